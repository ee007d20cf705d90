//! The install guide's cluster requirements that hold before and after the install: the
//! cluster's size (allocatable CPU and memory of its schedulable, Ready nodes, and how many
//! there are) and one mesh (no pilot/istiod outside the mesh's namespace but GKE on VMware's
//! own). Pure; two entry points read them: `meshkeeper check --pre` (the `pre-install` check,
//! where a shortfall is an error) and the `control-plane` check after the install (a warning).

use serde::Serialize;

use crate::cache::{DeploymentInfo, Index, NodeInfo};
use crate::config::{CapacitySettings, ControlPlaneSettings};
use crate::findings::{Finding, Item, ObjectRef, Severity};

/// Deployment names that identify a mesh control plane (for the one-mesh rule).
const CONTROL_PLANE_NAMES: &[&str] = &["istio-pilot", "istiod"];

/// The hint of every capacity shortfall.
const ADD_NODES: &str = "add nodes to the user cluster (gkectl update / the node pool's replicas)";

/// The cluster's size, from the node cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// Every node, and those whose Ready condition is True (the gauges).
    pub nodes: usize,
    pub ready_nodes: usize,
    /// Allocatable CPU (millicores) and memory (bytes) of every node (the gauges).
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// What the requirement counts: schedulable (not cordoned), Ready nodes and their allocatable.
    pub usable_nodes: usize,
    pub usable_cpu_millis: i64,
    pub usable_memory_bytes: i64,
    /// The nodes not counted, each with why (`NotReady`, `cordoned`).
    pub left_out: Vec<(String, String)>,
}

/// Sums the nodes' allocatable (not capacity): all of them, and the usable ones.
pub fn capacity(nodes: &Index<NodeInfo>) -> Capacity {
    let mut c = Capacity { nodes: nodes.len(), ..Default::default() };
    for n in nodes.iter() {
        c.cpu_millis += n.cpu_millis;
        c.memory_bytes += n.memory_bytes;
        if n.ready {
            c.ready_nodes += 1;
        }
        if n.usable() {
            c.usable_nodes += 1;
            c.usable_cpu_millis += n.cpu_millis;
            c.usable_memory_bytes += n.memory_bytes;
        } else {
            let why: Vec<&str> = [(!n.ready, "NotReady"), (n.unschedulable, "cordoned")]
                .into_iter()
                .filter_map(|(x, w)| x.then_some(w))
                .collect();
            c.left_out.push((n.name.clone(), why.join(", ")));
        }
    }
    c
}

/// `3920` millicores as `3.92`.
fn cores(millis: i64) -> String {
    let s = format!("{}.{:03}", millis / 1000, (millis % 1000).abs());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bytes as GB (10^9) with two decimals, rounded down (`up`: rounded up), trailing zeros cut.
fn gb(bytes: i64, up: bool) -> String {
    let hundredths = if up { (bytes + 9_999_999).div_euclid(10_000_000) } else { bytes.div_euclid(10_000_000) };
    let s = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `CapacitySettings`' minimums in the units the nodes report.
fn minimums(want: &CapacitySettings) -> (u64, i64, i64) {
    (u64::from(want.min_nodes), (want.min_cpu_cores * 1000.0).round() as i64, (want.min_memory_gb * 1e9).round() as i64)
}

/// One item per minimum (nodes, vCPU, memory): a pass at or above it, else a finding of
/// `severity` naming the shortfall and the nodes not counted.
pub fn capacity_items(check: &'static str, severity: Severity, cap: &Capacity, want: &CapacitySettings) -> Vec<Item> {
    let (min_nodes, min_millis, min_bytes) = minimums(want);
    let left_out = if cap.left_out.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = cap.left_out.iter().map(|(n, why)| format!("{n} ({why})")).collect();
        format!("; not counted: {}", names.join(", "))
    };
    let hint = if cap.left_out.is_empty() {
        ADD_NODES.to_string()
    } else {
        let first = &cap.left_out[0].0;
        format!(
            "{ADD_NODES}, or bring the nodes not counted back (kubectl describe node {first}; kubectl uncordon {first})"
        )
    };
    let short = |desc: String, object: &str, expected: String, actual: String, shortfall: String| {
        let message =
            format!("the user cluster has {actual}: {shortfall} short of the install guide's minimum{left_out}");
        Item::finding(
            desc,
            Finding::report_only(check, "CapacityBelowMinimum", severity, ObjectRef::cluster(object), message)
                .wanted(expected, actual)
                .hint(hint.clone()),
        )
    };
    let mut items = Vec::new();

    let desc = format!("at least {min_nodes} schedulable, Ready nodes");
    let n = cap.usable_nodes as u64;
    if n >= min_nodes {
        items.push(Item::pass(format!("{desc} ({n})")));
    } else {
        let actual = format!("{n} schedulable, Ready node(s)");
        items.push(short(desc, "nodes", format!(">= {min_nodes} nodes"), actual, format!("{} node(s)", min_nodes - n)));
    }

    let desc = format!("at least {} vCPU allocatable on them", cores(min_millis));
    let have = cap.usable_cpu_millis;
    if have >= min_millis {
        items.push(Item::pass(format!("{desc} ({})", cores(have))));
    } else {
        let actual = format!("{} vCPU allocatable", cores(have));
        items.push(short(
            desc,
            "cpu",
            format!(">= {} vCPU", cores(min_millis)),
            actual,
            format!("{} vCPU", cores(min_millis - have)),
        ));
    }

    let desc = format!("at least {} GB of memory allocatable on them", gb(min_bytes, false));
    let have = cap.usable_memory_bytes;
    if have >= min_bytes {
        items.push(Item::pass(format!("{desc} ({} GB)", gb(have, false))));
    } else {
        let actual = format!("{} GB allocatable", gb(have, false));
        let shortfall = format!("{} GB", gb(min_bytes - have, true));
        items.push(short(desc, "memory", format!(">= {} GB", gb(min_bytes, false)), actual, shortfall));
    }
    items
}

/// Whether a Deployment is a mesh control plane (pilot or istiod, by name or label).
pub fn is_control_plane(d: &DeploymentInfo) -> bool {
    CONTROL_PLANE_NAMES.contains(&d.name.as_str())
        || d.labels.get("istio").is_some_and(|v| v == "pilot")
        || d.labels.get("app").is_some_and(|v| v == "istiod")
}

/// Control planes outside the mesh's namespace and the ignored ones (GKE on VMware's own), as
/// (namespace, name).
pub fn other_meshes(deployments: &Index<DeploymentInfo>, cp: &ControlPlaneSettings) -> Vec<(String, String)> {
    deployments
        .iter()
        .filter(|d| d.namespace != cp.namespace && !cp.ignored_namespaces.contains(&d.namespace))
        .filter(|d| is_control_plane(d))
        .map(|d| (d.namespace.clone(), d.name.clone()))
        .collect()
}

/// The one-mesh rule: a pass, or an error per other control plane.
pub fn one_mesh_items(check: &'static str, others: &[(String, String)], cp: &ControlPlaneSettings) -> Vec<Item> {
    let ns = &cp.namespace;
    let desc = format!("one mesh: no control plane outside {ns} (ignoring {})", cp.ignored_namespaces.join(", "));
    if others.is_empty() {
        return vec![Item::pass(desc)];
    }
    others
        .iter()
        .map(|(ons, name)| {
            let message = format!("a second control plane {name} runs in {ons}; the install guide allows one mesh");
            let f = Finding::report_only(
                check,
                "SecondControlPlane",
                Severity::Error,
                ObjectRef::new("apps/v1", "Deployment", Some(ons), name),
                message,
            )
            .wanted(format!("a control plane only in {ns}"), format!("{ons}/{name}"))
            .hint(format!(
                "kubectl -n {ons} get deploy {name}; remove it or add {ons} to control_plane.ignored_namespaces if it is not a mesh"
            ));
            Item::finding(desc.clone(), f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Profile, Settings};
    use crate::findings::Outcome;

    const GB: i64 = 1_000_000_000;

    fn want() -> CapacitySettings {
        Settings::defaults(Profile::AsmOnprem).control_plane.capacity
    }

    /// (reason, object) of each finding, "" for a pass.
    fn verdicts(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match &i.outcome {
                Outcome::Finding(f) => format!("{}:{}", f.reason, f.object.name),
                Outcome::Pass => "pass".into(),
                Outcome::Skipped { .. } => "skipped".into(),
            })
            .collect()
    }

    #[test]
    fn capacity_counts_schedulable_ready_nodes_and_their_allocatable() {
        let mut cordoned = NodeInfo::test("n-cordoned", 4000, 16 * GB);
        cordoned.unschedulable = true;
        let mut down = NodeInfo::test("n-down", 4000, 16 * GB);
        down.ready = false;
        let mut both = NodeInfo::test("n-both", 4000, 16 * GB);
        (both.ready, both.unschedulable) = (false, true);
        let nodes = Index::from_objects([NodeInfo::test("n-ok", 3920, 16_333_365_248), cordoned, down, both]);
        let c = capacity(&nodes);
        assert_eq!((c.nodes, c.ready_nodes, c.usable_nodes), (4, 2, 1));
        assert_eq!((c.cpu_millis, c.usable_cpu_millis), (15_920, 3920));
        assert_eq!(c.usable_memory_bytes, 16_333_365_248);
        assert_eq!(
            c.left_out,
            [
                ("n-both".into(), "NotReady, cordoned".into()),
                ("n-cordoned".into(), "cordoned".into()),
                ("n-down".into(), "NotReady".into())
            ]
        );
    }

    #[test]
    fn each_minimum_passes_at_or_above_it_and_names_the_shortfall_below() {
        let node = |cpu, mem| NodeInfo::test("x", cpu, mem);
        // (case, nodes, expected verdicts for nodes / vCPU / memory)
        let cases: Vec<(&str, Vec<NodeInfo>, [&str; 3])> = vec![
            ("exactly the minimum", (0..4).map(|_| node(1000, 3_750_000_000)).collect(), ["pass"; 3]),
            ("real nodes, well above", (0..4).map(|_| node(3920, 16_333_365_248)).collect(), ["pass"; 3]),
            (
                "three nodes",
                (0..3).map(|_| node(1000, 3_750_000_000)).collect(),
                ["CapacityBelowMinimum:nodes", "CapacityBelowMinimum:cpu", "CapacityBelowMinimum:memory"],
            ),
            (
                "one millicore short",
                vec![node(1000, 4 * GB), node(1000, 4 * GB), node(1000, 4 * GB), node(999, 4 * GB)],
                ["pass", "CapacityBelowMinimum:cpu", "pass"],
            ),
            (
                "one byte short",
                vec![node(1000, 4 * GB), node(1000, 4 * GB), node(1000, 4 * GB), node(1000, 3 * GB - 1)],
                ["pass", "pass", "CapacityBelowMinimum:memory"],
            ),
            (
                "no nodes",
                vec![],
                ["CapacityBelowMinimum:nodes", "CapacityBelowMinimum:cpu", "CapacityBelowMinimum:memory"],
            ),
        ];
        for (name, nodes, want_v) in cases {
            let nodes = Index::from_objects(nodes.into_iter().enumerate().map(|(i, mut n)| {
                n.name = format!("node-{i}");
                n
            }));
            let items = capacity_items("t", Severity::Error, &capacity(&nodes), &want());
            assert_eq!(verdicts(&items), want_v, "case {name:?}");
        }
    }

    #[test]
    fn a_shortfall_reads_as_numbers_with_the_nodes_not_counted() {
        let mut cordoned = NodeInfo::test("user-node-3", 1000, 3_750_000_000);
        cordoned.unschedulable = true;
        let nodes = (0..3).map(|i| NodeInfo::test(&format!("user-node-{i}"), 1000, 3_750_000_000)).chain([cordoned]);
        let items = capacity_items("pre-install", Severity::Error, &capacity(&Index::from_objects(nodes)), &want());
        let f: Vec<&Finding> = items
            .iter()
            .filter_map(|i| match &i.outcome {
                Outcome::Finding(f) => Some(f.as_ref()),
                _ => None,
            })
            .collect();
        assert_eq!(items[0].description, "at least 4 schedulable, Ready nodes");
        assert_eq!((f[0].expected.as_str(), f[0].actual.as_str()), (">= 4 nodes", "3 schedulable, Ready node(s)"));
        assert_eq!(
            f[0].message,
            "the user cluster has 3 schedulable, Ready node(s): 1 node(s) short of the install guide's minimum; not counted: user-node-3 (cordoned)"
        );
        assert_eq!(f[1].message.split(':').nth(1), Some(" 1 vCPU short of the install guide's minimum; not counted"));
        assert_eq!((f[2].expected.as_str(), f[2].actual.as_str()), (">= 15 GB", "11.25 GB allocatable"));
        assert!(f[2].message.contains("3.75 GB short"), "{}", f[2].message);
        assert!(f[0].hint.as_deref().unwrap().contains("kubectl uncordon user-node-3"));
        assert!(f.iter().all(|f| f.severity == Severity::Error && f.check == "pre-install"));
    }

    #[test]
    fn figures_are_rounded_so_a_shortfall_never_reads_as_zero() {
        assert_eq!(cores(3920), "3.92");
        assert_eq!(cores(4000), "4");
        assert_eq!(cores(1), "0.001");
        assert_eq!(gb(15 * GB, false), "15");
        assert_eq!(gb(16_333_365_248, false), "16.33");
        assert_eq!(gb(15 * GB - 1, false), "14.99", "down: just below the minimum never shows it");
        assert_eq!(gb(1, true), "0.01", "up: a byte short is a visible shortfall");
    }

    #[test]
    fn gke_on_vmware_pieces_are_never_a_second_mesh() {
        let cp = Settings::defaults(Profile::AsmOnprem).control_plane;
        let d = |ns: &str, name: &str| DeploymentInfo::test(ns, name);
        let deployments = Index::from_objects([
            d("istio-system", "istio-pilot"),
            d("gke-system", "istio-pilot"),
            d("kube-system", "istio-citadel"),
            d("other", "istiod"),
            d("apps", "web"),
        ]);
        let others = other_meshes(&deployments, &cp);
        assert_eq!(others, [("other".to_string(), "istiod".to_string())]);
        assert_eq!(verdicts(&one_mesh_items("t", &others, &cp)), ["SecondControlPlane:istiod"]);
        assert_eq!(verdicts(&one_mesh_items("t", &[], &cp)), ["pass"]);
    }
}
