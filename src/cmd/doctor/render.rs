//! The report: a table for people, JSON for scripts.

use super::checks::{Finding, Outcome};
use std::fmt::Write as _;

/// Columns CHECK, RESULT, CAUSE, DETAIL; a problem's one-line remedy follows on its own line
/// under DETAIL, so the table stays readable in a terminal.
pub fn table(findings: &[Finding]) -> String {
    let cause = |f: &Finding| f.cause.map(|c| c.id).unwrap_or("-");
    let w_check = findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let w_cause = findings
        .iter()
        .map(|f| cause(f).len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:w_check$}  {:7}  {:w_cause$}  DETAIL",
        "CHECK", "RESULT", "CAUSE"
    );
    for f in findings {
        let _ = writeln!(
            s,
            "{:w_check$}  {:7}  {:w_cause$}  {}",
            f.check,
            f.result.as_str(),
            cause(f),
            f.detail
        );
        if let Some(r) = &f.remedy {
            let _ = writeln!(s, "{:w$}  fix: {r}", "", w = w_check + 2 + 7 + 2 + w_cause);
        }
    }
    let problems = findings
        .iter()
        .filter(|f| f.result == Outcome::Problem)
        .count();
    if problems == 0 {
        let _ = writeln!(s, "\nno problem found");
    } else {
        let _ = writeln!(
            s,
            "\n{problems} problem{} found; `regdoc explain <cause>` says more",
            if problems == 1 { "" } else { "s" }
        );
    }
    s
}

pub fn json(findings: &[Finding]) -> String {
    let problems = findings
        .iter()
        .filter(|f| f.result == Outcome::Problem)
        .count();
    let v = serde_json::json!({
        "healthy": problems == 0,
        "problems": problems,
        "checks": findings,
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
