//! Rows of the suite's table, running scenarios (a panic is a failed row naming it), and
//! rendering the table.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub fault: String,
    pub expected: String,
    pub observed: String,
    pub pass: bool,
}

impl Row {
    /// A row that passes when `pass` holds; `observed` says what was measured either way.
    pub fn check(scenario: &str, fault: &str, expected: &str, observed: impl Into<String>, pass: bool) -> Row {
        Row {
            scenario: scenario.into(),
            fault: fault.into(),
            expected: expected.into(),
            observed: observed.into(),
            pass,
        }
    }
}

/// What runs a scenario.
pub type Runner = fn() -> BoxFuture<'static, Vec<Row>>;

/// Runs the scenarios, `jobs` at a time, each on its own task; a panicking scenario becomes
/// one failed row carrying the panic message. Rows come back in the scenarios' order.
pub async fn run_all(scenarios: Vec<(&'static str, Runner)>, jobs: usize) -> Vec<Row> {
    let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut handles = Vec::new();
    for (name, run) in scenarios {
        let gate = gate.clone();
        handles.push((
            name,
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                let start = Instant::now();
                eprintln!("faults: {name} ...");
                let result = tokio::spawn(run()).await;
                eprintln!("faults: {name} done in {:.1} s", start.elapsed().as_secs_f64());
                result
            }),
        ));
    }
    let mut rows = Vec::new();
    for (name, handle) in handles {
        match handle.await.expect("scenario task") {
            Ok(r) if r.is_empty() => rows.push(Row::check(name, "-", "at least one row", "none reported", false)),
            Ok(r) => rows.extend(r),
            Err(e) => {
                let message = panic_message(e);
                rows.push(Row::check(name, "-", "no panic", format!("panicked: {message}"), false));
            }
        }
    }
    rows
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a non-string panic".into()),
        Err(e) => e.to_string(),
    }
}

/// The table: one line per row, columns padded, long cells wrapped at 60 characters.
pub fn render(rows: &[Row]) -> String {
    const WRAP: usize = 60;
    let header = ["scenario", "fault", "expected", "observed", "result"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                r.fault.clone(),
                r.expected.clone(),
                r.observed.clone(),
                if r.pass { "pass".into() } else { "FAIL".into() },
            ]
        })
        .collect();
    let wrapped: Vec<[Vec<String>; 5]> = cells.iter().map(|c| c.clone().map(|s| wrap(&s, WRAP))).collect();
    let mut width = header.map(str::len);
    for row in &wrapped {
        for (i, lines) in row.iter().enumerate() {
            width[i] = width[i].max(lines.iter().map(|l| l.chars().count()).max().unwrap_or(0));
        }
    }
    let mut out = String::new();
    let line = |cols: [&str; 5], out: &mut String| {
        let padded: Vec<String> = cols.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = width[i])).collect();
        out.push_str(&format!("| {} |\n", padded.join(" | ")));
    };
    line(header, &mut out);
    out.push_str(&format!("|{}|\n", width.map(|w| "-".repeat(w + 2)).join("|")));
    for row in &wrapped {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let col = |i: usize| row[i].get(k).map(String::as_str).unwrap_or("");
            line([col(0), col(1), col(2), col(3), col(4)], &mut out);
        }
    }
    out
}

/// Splits text at spaces into lines of at most `n` characters (a longer word stays whole).
fn wrap(text: &str, n: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > n {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// The rows as one Markdown table, a line per row (for notes and reports).
pub fn markdown(rows: &[Row]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("| scenario | fault | expected | observed | result |\n|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&r.scenario),
            cell(&r.fault),
            cell(&r.expected),
            cell(&r.observed),
            if r.pass { "pass" } else { "FAIL" }
        ));
    }
    out
}
