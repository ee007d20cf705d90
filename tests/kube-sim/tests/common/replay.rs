//! Replays the recorded answers of a real API server (`tests/transcripts/*.json`, see its
//! README) against kube-sim and compares them: status codes, `reason`, `message` (with the
//! names, uids, resourceVersions and times that legitimately differ mapped or normalised),
//! Warning/Retry-After/Content-Type headers, and the shape of bodies (same keys, same kinds of
//! values; exact values except for identities, versions and times).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{Client, Resp, Watch};

/// The recorder's User-Agent: its field manager in every answer.
pub const UA: &str = "record-real-server/1.0";

pub fn load(file: &str) -> Value {
    let path = format!("{}/tests/transcripts/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An answer known to differ, and why. `controller`: it depends on cluster controllers
/// (`src/actors/`), so it may start to match as they improve; that is reported, not failed.
pub struct Known {
    pub file: &'static str,
    pub answer: &'static str,
    pub controller: bool,
    pub why: &'static str,
}

struct Row {
    answer: String,
    step: String,
    diffs: Vec<String>,
}

pub struct Replay {
    pub file: &'static str,
    pub t: Value,
    pub c: Client,
    subst: Vec<(String, String)>,
    rows: Vec<Row>,
}

// === normalisation ===

fn is_uuid(s: &[u8]) -> bool {
    s.len() >= 36
        && s[..36]
            .iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

fn time_len(s: &[u8]) -> Option<usize> {
    // 2026-12-01T07:44:38Z or with fractional seconds
    let pat = b"dddd-dd-ddTdd:dd:dd";
    if s.len() < 20 || !pat.iter().zip(s).all(|(p, c)| if *p == b'd' { c.is_ascii_digit() } else { p == c }) {
        return None;
    }
    let mut n = 19;
    if s.get(n) == Some(&b'.') {
        n += 1;
        while s.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    (s.get(n) == Some(&b'Z')).then_some(n + 1)
}

/// uuids, RFC 3339 times and numbers of 4 digits or more (resourceVersions, nodePorts) become
/// placeholders.
pub fn norm(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if is_uuid(&b[i..]) {
            out.push_str("<uid>");
            i += 36;
        } else if let Some(n) = time_len(&b[i..]) {
            out.push_str("<time>");
            i += n;
        } else if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start >= 4 { out.push_str("<n>") } else { out.push_str(&s[start..i]) }
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Keys whose values differ between any two servers: compared by kind only.
fn loose(key: &str) -> bool {
    matches!(
        key,
        "resourceVersion"
            | "continue"
            | "uid"
            | "clusterIP"
            | "clusterIPs"
            | "creationTimestamp"
            | "deletionTimestamp"
            | "time"
            | "lastTransitionTime"
            | "lastUpdateTime"
            | "nodePort"
            | "healthCheckNodePort"
            | "gitVersion"
            | "gitCommit"
            | "buildDate"
            | "goVersion"
            | "serverAddress"
            | "username"
            | "eventTime"
            | "startTime"
            | "podIP"
            | "hostIP"
            | "kubectl.kubernetes.io/restartedAt"
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 { format!("{}...", s.chars().take(160).collect::<String>()) } else { s }
}

impl Replay {
    pub fn new(file: &'static str, addr: std::net::SocketAddr) -> Replay {
        Replay { file, t: load(file), c: Client::new(addr), subst: Vec::new(), rows: Vec::new() }
    }

    /// Maps a recorded value (a resourceVersion, uid, token, nodePort) to kube-sim's.
    pub fn map(&mut self, recorded: &str, sim: &str) {
        if recorded != sim && !recorded.is_empty() && !self.subst.iter().any(|(r, _)| r == recorded) {
            self.subst.push((recorded.to_string(), sim.to_string()));
        }
    }

    fn sim_value(&self, recorded: &str) -> Option<&str> {
        self.subst.iter().find(|(r, _)| r == recorded).map(|(_, s)| s.as_str())
    }

    /// The recorded string with every mapped value replaced where it stands alone.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (r, s) in &self.subst {
            let mut i = 0;
            while let Some(pos) = out[i..].find(r.as_str()) {
                let at = i + pos;
                let end = at + r.len();
                let bounded = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
                if bounded(out[..at].chars().last()) && bounded(out[end..].chars().next()) {
                    out.replace_range(at..end, s);
                    i = at + s.len();
                } else {
                    i = end;
                }
            }
        }
        out
    }

    fn rewrite_value(&self, v: &Value, key: &str) -> Value {
        match v {
            Value::String(s) => Value::String(self.sim_value(s).map(str::to_string).unwrap_or_else(|| s.clone())),
            Value::Number(n) if matches!(key, "nodePort" | "healthCheckNodePort") => {
                self.sim_value(&n.to_string()).and_then(|s| s.parse::<i64>().ok()).map_or(v.clone(), Value::from)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.rewrite_value(x, key)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), self.rewrite_value(x, k))).collect()),
            other => other.clone(),
        }
    }

    /// Learns the mapping of identities from a recorded answer and kube-sim's.
    pub fn learn(&mut self, rec: &Value, sim: &Value) {
        match (rec, sim) {
            (Value::Object(r), Value::Object(s)) => {
                for (k, rv) in r {
                    let Some(sv) = s.get(k) else { continue };
                    match (k.as_str(), rv, sv) {
                        ("resourceVersion" | "uid" | "continue" | "clusterIP", Value::String(a), Value::String(b)) => {
                            self.map(a, b)
                        }
                        ("nodePort" | "healthCheckNodePort", Value::Number(a), Value::Number(b)) => {
                            self.map(&a.to_string(), &b.to_string())
                        }
                        ("items", Value::Array(ri), Value::Array(si)) => {
                            for x in ri {
                                let name = &x["metadata"]["name"];
                                if let Some(y) = si.iter().find(|y| &y["metadata"]["name"] == name) {
                                    self.learn(x, y);
                                }
                            }
                        }
                        _ => self.learn(rv, sv),
                    }
                }
            }
            (Value::Array(r), Value::Array(s)) if r.len() == s.len() => {
                for (x, y) in r.iter().zip(s) {
                    self.learn(x, y);
                }
            }
            _ => {}
        }
    }

    pub fn request(&self, i: usize) -> &Value {
        &self.t["requests"][i]
    }

    pub fn response(&self, i: usize) -> &Value {
        &self.t["responses"][i]
    }

    /// Path and headers of request `i` as kube-sim gets them.
    fn parts(&self, i: usize) -> (String, Vec<(String, String)>) {
        let rq = self.request(i);
        let path = self.rewrite(rq["path"].as_str().unwrap_or_default());
        let mut headers = vec![("User-Agent".to_string(), UA.to_string())];
        if let Some(h) = rq["headers"].as_object() {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    headers.push((k.clone(), v.to_string()));
                }
            }
        }
        (path, headers)
    }

    /// Sends request `i` (bodies recorded as strings are sent as they are).
    pub async fn send(&self, i: usize) -> Resp {
        let rq = self.request(i);
        let (path, headers) = self.parts(i);
        let body = match &rq["body"] {
            Value::Null => Vec::new(),
            Value::String(s) => self.rewrite(s).into_bytes(),
            v => self.rewrite_value(v, "").to_string().into_bytes(),
        };
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.c.req_with(rq["method"].as_str().unwrap_or("GET"), &path, &h, &body).await
    }

    /// Sends request `i`, compares the answer with `responses[i]` and records the result.
    pub async fn check(&mut self, i: usize) -> Resp {
        let resp = self.send(i).await;
        let rec = self.response(i).clone();
        let diffs = self.compare(&rec, &resp);
        if let Ok(body) = serde_json::from_slice::<Value>(&resp.body) {
            let seen = if is_cut(&rec["body"], &body) { project(&rec["body"], &body) } else { body };
            self.learn(&rec["body"], &seen);
        }
        self.record(&format!("responses[{i}]"), rec["step"].as_str().unwrap_or_default(), diffs);
        resp
    }

    /// Records the result of one compared answer.
    pub fn record(&mut self, answer: &str, step: &str, diffs: Vec<String>) {
        self.rows.push(Row { answer: answer.into(), step: step.into(), diffs });
    }

    /// A watch request the real server refused (non-200, no stream): kube-sim must refuse it
    /// too; a stream instead is read briefly and reported.
    pub async fn check_refused_watch(&mut self, i: usize) {
        let mut w = self.open(i).await;
        let rec = self.response(i).clone();
        let mut diffs = Vec::new();
        if rec["status"].as_u64() != Some(u64::from(w.status)) {
            diffs.push(format!("status {} vs kube-sim {}", rec["status"], w.status));
        }
        if w.status == 200 {
            let (events, _) = collect(&mut w, Duration::from_millis(300), |_| false).await;
            diffs.push(format!("kube-sim streamed {} events instead of refusing", events.len()));
        } else if let Ok(Some(body)) = w.next_within(Duration::from_secs(2)).await {
            self.compare_body(&rec["body"], &body, &mut diffs);
        }
        self.record(&format!("responses[{i}]"), rec["step"].as_str().unwrap_or_default(), diffs);
    }

    /// Records an answer the replay cannot compare, and why (it must be in the known table).
    pub fn not_compared(&mut self, i: usize, why: &str) {
        let step = self.response(i)["step"].as_str().unwrap_or_default().to_string();
        self.record(&format!("responses[{i}]"), &step, vec![format!("not compared: {why}")]);
    }

    /// Opens the watch of request `i`.
    pub async fn open(&self, i: usize) -> Watch {
        self.open_at(i, None).await
    }

    /// Opens the watch of request `i`, at another path (a scaled-down timeout).
    pub async fn open_at(&self, i: usize, path: Option<String>) -> Watch {
        let (recorded, headers) = self.parts(i);
        let path = path.unwrap_or(recorded);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.c.watch_with(&path, &h).await
    }

    /// The recorded events of watch `i`.
    pub fn events(&self, i: usize) -> Vec<Value> {
        self.t["events"].as_array().map(|e| e.iter().filter(|e| e["watch"] == i).cloned().collect()).unwrap_or_default()
    }

    /// Compares a recorded answer with kube-sim's.
    pub fn compare(&self, rec: &Value, resp: &Resp) -> Vec<String> {
        let mut diffs = Vec::new();
        if rec["status"].as_u64() != Some(u64::from(resp.status)) {
            diffs.push(format!("status {} vs kube-sim {}", rec["status"], resp.status));
        }
        for h in ["Warning", "Retry-After", "Content-Type"] {
            let want: Vec<String> = match &rec["headers"][h] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => vec![],
            };
            let got: Vec<String> =
                resp.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(h)).map(|(_, v)| v.clone()).collect();
            if want != got {
                diffs.push(format!("header {h}: {want:?} vs kube-sim {got:?}"));
            }
        }
        if rec["body"].is_null() {
            return diffs;
        }
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(body) => self.compare_body(&rec["body"], &body, &mut diffs),
            Err(_) => diffs.push(format!("body is not JSON: {}", String::from_utf8_lossy(&resp.body))),
        }
        diffs
    }

    /// Compares a recorded body (possibly cut by the recorder) with kube-sim's.
    pub fn compare_body(&self, rec: &Value, sim: &Value, diffs: &mut Vec<String>) {
        let projected = if is_cut(rec, sim) { project(rec, sim) } else { sim.clone() };
        let mut rec = rec.clone();
        if let Some(m) = rec.as_object_mut() {
            m.remove("_trimmed");
        }
        self.shape(&rec, &projected, "", "body", diffs);
    }

    fn shape(&self, r: &Value, s: &Value, key: &str, path: &str, diffs: &mut Vec<String>) {
        match (r, s) {
            (Value::Object(rm), Value::Object(sm)) => {
                let missing: Vec<&String> = rm.keys().filter(|k| !sm.contains_key(*k)).collect();
                let extra: Vec<&String> = sm.keys().filter(|k| !rm.contains_key(*k)).collect();
                if !missing.is_empty() || !extra.is_empty() {
                    diffs.push(format!("{path}: kube-sim lacks {missing:?}, has extra {extra:?}"));
                }
                for (k, rv) in rm {
                    if let Some(sv) = sm.get(k) {
                        self.shape(rv, sv, k, &format!("{path}.{k}"), diffs);
                    }
                }
            }
            (Value::Array(ra), Value::Array(sa)) => {
                if ra.len() != sa.len() {
                    diffs.push(format!(
                        "{path}: {} items vs kube-sim {}: {} vs {}",
                        ra.len(),
                        sa.len(),
                        short(r),
                        short(s)
                    ));
                }
                for (i, (x, y)) in ra.iter().zip(sa).enumerate() {
                    self.shape(x, y, key, &format!("{path}[{i}]"), diffs);
                }
            }
            _ if kind(r) != kind(s) => diffs.push(format!("{path}: {} vs kube-sim {}", short(r), short(s))),
            _ if loose(key) => {}
            (Value::String(a), Value::String(b)) if norm(&self.rewrite(a)) != norm(b) => {
                diffs.push(format!("{path}: {} vs kube-sim {}", short(r), short(s)));
            }
            (Value::String(_), Value::String(_)) => {}
            _ if r != s => diffs.push(format!("{path}: {} vs kube-sim {}", short(r), short(s))),
            _ => {}
        }
    }

    /// Compares recorded watch events with kube-sim's (types in order, then each object).
    pub fn compare_events(&self, rec: &[Value], sim: &[Value], diffs: &mut Vec<String>) {
        let rt: Vec<&str> = rec.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect();
        let st: Vec<&str> = sim.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect();
        if rt != st {
            diffs.push(format!("event types {rt:?} vs kube-sim {st:?}"));
        }
        for (i, (r, s)) in rec.iter().zip(sim).enumerate() {
            let mut d = Vec::new();
            self.compare_body(&r["object"], &s["object"], &mut d);
            diffs.extend(d.into_iter().map(|x| format!("event {i}: {x}")));
        }
    }

    /// Prints the summary and fails on any difference that is not a known one, and on known
    /// API-level differences that no longer differ (so the table stays true).
    pub fn finish(self, known: &[Known]) {
        let mine: Vec<&Known> = known.iter().filter(|k| k.file == self.file).collect();
        for k in &mine {
            assert!(
                self.rows.iter().any(|r| r.answer == k.answer),
                "{}: known difference for {} names no compared answer",
                self.file,
                k.answer
            );
        }
        let (mut matched, mut known_n) = (0, 0);
        let mut report = String::new();
        let mut failures = Vec::new();
        for r in &self.rows {
            let k = mine.iter().find(|k| k.answer == r.answer);
            match (r.diffs.is_empty(), k) {
                (true, None) => matched += 1,
                (true, Some(k)) if k.controller => {
                    matched += 1;
                    let _ = writeln!(
                        report,
                        "  now matches (controller-dependent known difference, drop it): {} {}",
                        r.answer, r.step
                    );
                }
                (true, Some(_)) => {
                    failures.push(format!("{} ({}): listed as a known difference but matches", r.answer, r.step))
                }
                (false, Some(k)) => {
                    known_n += 1;
                    let _ = writeln!(
                        report,
                        "  known: {} ({}): {}\n      {}",
                        r.answer,
                        r.step,
                        k.why,
                        r.diffs.join("\n      ")
                    );
                }
                (false, None) => {
                    failures.push(format!("{} ({}):\n      {}", r.answer, r.step, r.diffs.join("\n      ")))
                }
            }
        }
        println!(
            "transcript {}: {} answers compared, {} matched, {} known differences, {} unexpected\n{report}",
            self.file,
            self.rows.len(),
            matched,
            known_n,
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{}: answers differ from the real server:\n  {}",
            self.file,
            failures.join("\n  ")
        );
    }
}

/// The recorder cut this body (`_trimmed`, or a projection without `kind`).
fn is_cut(rec: &Value, sim: &Value) -> bool {
    rec.get("_trimmed").is_some() || (rec.is_object() && rec.get("kind").is_none() && sim.get("kind").is_some())
}

/// A field the recorder picked, found in kube-sim's object the way the recorder found it.
pub fn pick(obj: &Value, key: &str) -> Option<Value> {
    let found = match key {
        "restartedAt" => &obj["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "revision" => &obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "controller-revision-hash" => &obj["metadata"]["labels"]["controller-revision-hash"],
        "phase" => &obj["status"]["phase"],
        // The recorder read an absent (omitempty) paused as false.
        "spec.paused" => return Some(obj["spec"]["paused"].as_bool().map_or(Value::Bool(false), Value::Bool)),
        "ready" => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            return Some(Value::Bool(ready));
        }
        k if k.starts_with("spec.") => {
            let mut cur = obj;
            for part in k.split('.') {
                cur = &cur[part];
            }
            cur
        }
        k => match obj.get(k) {
            Some(v) => v,
            None => &obj["metadata"][k],
        },
    };
    (!found.is_null()).then(|| found.clone())
}

/// kube-sim's body cut the way the recorder cut the real one: the recorded keys picked from it;
/// list items each cut to the first recorded item's keys.
pub fn project(rec: &Value, sim: &Value) -> Value {
    let Value::Object(r) = rec else { return sim.clone() };
    let mut out = Map::new();
    for (k, rv) in r {
        if k == "_trimmed" {
            continue;
        }
        let sv = pick(sim, k).unwrap_or(Value::Null);
        let v = match (k.as_str(), rv, &sv) {
            ("items", Value::Array(ri), Value::Array(si)) => match ri.first() {
                Some(first) if is_cut(first, si.first().unwrap_or(&Value::Null)) => {
                    Value::Array(si.iter().map(|x| project(first, x)).collect())
                }
                _ => sv.clone(),
            },
            ("metadata", Value::Object(_), Value::Object(_))
                if sim.get("metadata").is_some() && rec.get("kind").is_none() =>
            {
                project(rv, &sv)
            }
            _ => {
                let mut sv = sv;
                cut_conditions(rv, &mut sv);
                sv
            }
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// In a picked value, the recorder cut status conditions to type, status, reason and message:
/// kube-sim's conditions are cut to the keys the recorded ones have.
fn cut_conditions(rec: &Value, sim: &mut Value) {
    let (Value::Object(r), Value::Object(s)) = (rec, sim) else { return };
    for (k, rv) in r {
        let Some(sv) = s.get_mut(k) else { continue };
        match (k.as_str(), rv, sv) {
            ("conditions", Value::Array(ra), Value::Array(sa)) => {
                let keys: BTreeSet<&String> = ra.iter().filter_map(Value::as_object).flat_map(Map::keys).collect();
                if keys.is_empty() {
                    continue;
                }
                for c in sa.iter_mut().filter_map(Value::as_object_mut) {
                    c.retain(|k, _| keys.contains(k));
                }
            }
            (_, rv, sv) => cut_conditions(rv, sv),
        }
    }
}

/// Events of a watch, with the seconds since it was opened, until `stop` says so, the server
/// ends it, or `max` passes (then the client closes it, as the recorder did).
pub async fn collect(
    w: &mut Watch,
    max: Duration,
    stop: impl Fn(&[Value]) -> bool,
) -> (Vec<(f64, Value)>, Option<f64>) {
    let started = Instant::now();
    let mut events: Vec<(f64, Value)> = Vec::new();
    loop {
        let left = max.saturating_sub(started.elapsed());
        match w.next_within(left).await {
            Ok(Some(ev)) => {
                events.push((started.elapsed().as_secs_f64(), ev));
                let evs: Vec<Value> = events.iter().map(|(_, e)| e.clone()).collect();
                if stop(&evs) {
                    return (events, None);
                }
            }
            Ok(None) => return (events, Some(started.elapsed().as_secs_f64())),
            Err(()) => return (events, None),
        }
    }
}

/// The distinct values of a key across items (for summaries in messages).
pub fn names(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}
