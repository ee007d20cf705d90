//! The evaluation loop: on every change (or the periodic resync) run the checks whose inputs
//! changed and have listed, record their reports (logs, Events as leader), keep each check's
//! latest remedies, and run the planner over all of them; the leader's actions go to the
//! actuator.
//!
//! ```text
//!  Dirty{resources} ─► checks (inputs listed) ─► reports ─► AgentState (findings) ─► logs · Events
//!                                        └─► remedies ─► planner (+ ledger) ─► actions ─► actuator
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::Caches;
use crate::cache::watch::Dirty;
use crate::change::{Remedy, RestartInput};
use crate::checks::{self, ApiProbe, Changes, Check, Health, Resource, View};
use crate::config::Settings;
use crate::findings::CheckReport;
use crate::findings::ObjectRef;
use crate::metrics::Metrics;
use crate::plan::{self, Action, Gates, Ledger};
use crate::report::{self, events::EventRequest, events::EventSink};
use crate::state::{AgentState, ReinjectionSummary, unix_now, unix_now_ms};

/// What the evaluator needs.
pub struct Evaluator {
    pub settings: Settings,
    pub checks: Vec<Box<dyn Check>>,
    pub caches: Caches,
    pub probe: Arc<RwLock<ApiProbe>>,
    pub agent: Arc<AgentState>,
    pub metrics: Metrics,
    pub events: EventSink,
    pub dirty: Arc<Dirty>,
    pub actions: mpsc::Sender<Vec<Action>>,
    pub ledger: Arc<Mutex<Ledger>>,
    /// The latest remedies of each check (a check not re-evaluated keeps its last ones).
    pub remedies: BTreeMap<&'static str, Vec<Remedy>>,
    /// The re-injection check's latest restart candidates and facts.
    pub restarts: Option<RestartInput>,
    /// Workloads already told (by an Event) why their restart is held, and the reason, while
    /// they keep waiting ([`plan::holds_to_tell`]).
    pub held: BTreeSet<(ObjectRef, &'static str)>,
    /// Whether the last pass ran as leader (a new leader publishes Events for current findings).
    pub led: bool,
    /// Restart actions sent to the actuator and not carried out yet (it counts them down).
    pub restarts_queued: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Evaluator {
    /// The planner's gates from the shared state.
    fn gates(&self, leader: bool) -> Gates {
        let watches = self.agent.watches();
        let failing = self
            .checks
            .iter()
            .map(|c| {
                let res: Vec<String> = checks::cache_inputs(c.as_ref())
                    .into_iter()
                    .map(Resource::as_str)
                    .filter(|r| watches.get(r).is_some_and(|w| w.error.is_some()))
                    .map(str::to_string)
                    .collect();
                (c.name(), res)
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        Gates {
            leader,
            synced: self.agent.is_ready(),
            failing,
            restarts_queued: self.restarts_queued.load(Ordering::SeqCst),
        }
    }

    fn record(&self, report: CheckReport, publish: bool) {
        let diff = self.agent.record_report(report);
        report::log_diff(&diff);
        if publish {
            for f in &diff.appeared {
                self.events.send(EventRequest::for_finding(f));
            }
        }
    }

    /// One evaluation.
    /// `changes`: where the dirty resources changed (None: unknown, evaluate everything).
    pub fn pass(&mut self, dirty: Option<&BTreeSet<Resource>>, changes: Option<&Changes>) {
        self.agent.beat();
        let leader = self.agent.is_leader();
        let newly_leader = leader && !self.led;
        self.led = leader;
        let health = Health { watches: self.agent.watches(), leader: self.agent.leader_observation() };
        let evaluations = {
            let guards = self.caches.read();
            let probe = self.probe.read().unwrap_or_else(|p| p.into_inner());
            let mut view = View::locked(&self.settings, &probe, &guards, &health, unix_now() as i64);
            if let Some(c) = changes {
                view = view.with_changes(c);
            }
            let _t = self.metrics.time("evaluate");
            let agent = &self.agent;
            checks::evaluate(&self.checks, &view, dirty, |r| agent.listed(r.as_str()))
        };
        let now = unix_now_ms() as f64 / 1000.0;
        for ev in evaluations {
            let check = ev.report.check;
            self.metrics.last_evaluation.with_label_values(&[check]).set(now);
            self.record(ev.report, leader && !newly_leader);
            self.remedies.insert(check, ev.remedies);
            if let Some(g) = ev.gauges {
                self.agent.set_check_gauges(check, g);
            }
            if ev.restarts.is_some() {
                self.restarts = ev.restarts;
            }
        }
        let remedies: Vec<Remedy> = self.remedies.values().flatten().cloned().collect();
        let gates = self.gates(leader);
        let plan = {
            let mut ledger = lock(&self.ledger);
            plan::plan(&self.settings, &remedies, self.restarts.as_ref(), &gates, unix_now_ms(), &mut ledger)
        };
        self.summarise_reinjection(&plan, leader);
        self.metrics.last_evaluation.with_label_values(&[plan::CHECK]).set(now);
        self.record(plan.report, leader && !newly_leader);
        let contested = plan
            .waiting
            .iter()
            .filter_map(|w| match &w.wait {
                plan::Wait::Contested { field, .. } => Some((w.check.to_string(), field.clone())),
                _ => None,
            })
            .collect();
        self.agent.set_plan_summary(serde_json::to_value(&plan.waiting).unwrap_or_default(), contested);
        if newly_leader {
            // Findings that appeared while another replica (or nobody) led got no Event from us.
            for f in self.agent.findings().iter() {
                self.events.send(EventRequest::for_finding(f));
            }
        }
        let mut names = checks::names(&self.checks);
        names.push(plan::CHECK);
        self.metrics.set_findings(&names, &self.agent.findings());
        if leader && !plan.actions.is_empty() {
            // Counted before they are sent: the actuator counts each down once carried out.
            let restarts = plan.actions.iter().filter(|a| a.kind == crate::checks::reinjection::ACTION).count();
            self.restarts_queued.fetch_add(restarts, Ordering::SeqCst);
            if self.actions.try_send(plan.actions).is_err() {
                self.restarts_queued.fetch_sub(restarts, Ordering::SeqCst);
                // The actuator is busy; the next pass re-plans whatever is still needed.
                self.metrics.reconcile_errors.with_label_values(&["evaluate", "action_queue_full"]).inc();
            }
        }
        self.agent.beat();
    }

    /// The re-injection gauges, and an Event for each workload whose restart starts being held.
    fn summarise_reinjection(&mut self, plan: &plan::Plan, leader: bool) {
        if self.restarts.is_none() {
            return;
        }
        let check = crate::checks::reinjection::CHECK;
        let mut pending: BTreeMap<String, u64> = BTreeMap::new();
        let waits: Vec<&plan::Waiting> = plan.waiting.iter().filter(|w| w.check == check).collect();
        for w in &waits {
            *pending.entry(w.wait.label().to_string()).or_default() += 1;
        }
        // (A follower's waits are `not_leader`, which nothing tells: a new leader tells what it finds.)
        for w in plan::holds_to_tell(&mut self.held, waits) {
            if let (true, Some(action)) = (leader, w.wait.held_action()) {
                self.events.send(EventRequest {
                    object: w.object.clone(),
                    warning: false,
                    reason: "ReinjectionHeld".into(),
                    action: action.into(),
                    note: format!("re-injection of {} waits: {}", w.object, w.wait.describe()),
                });
            }
        }
        for f in self.agent.findings().iter().filter(|f| f.check == check) {
            let label = match f.reason {
                "NoControllerToRestart" => "no_controller",
                "ReinjectionBlocked" => "blocked",
                "ReinjectionFailed" => "failed",
                "ReinjectionOptedOut" => "opted_out",
                _ => continue,
            };
            *pending.entry(label.to_string()).or_default() += 1;
        }
        self.agent.set_reinjection_summary(ReinjectionSummary {
            pending,
            rollouts_in_progress: plan.rollouts_in_progress as u64,
            known: true,
        });
    }

    pub async fn run(mut self, resync: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listed: BTreeSet<Resource> = BTreeSet::new();
        loop {
            let full = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => true,
                _ = self.dirty.changed() => false,
            };
            let (mut dirty, mut changes) = self.dirty.take_changes();
            // A cache that has just listed for the first time: the checks reading it run now.
            for r in Resource::ALL.iter().filter(|r| r.is_cache()) {
                if self.agent.listed(r.as_str()) && listed.insert(*r) {
                    dirty.insert(*r);
                    changes.namespaces.insert(*r, None);
                }
            }
            if full {
                self.pass(None, None);
            } else {
                self.pass(Some(&dirty), Some(&changes));
            }
        }
    }
}
