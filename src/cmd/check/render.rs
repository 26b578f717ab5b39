//! The report: a table for people, JSON for scripts. Secrets are taken out of both by value,
//! whatever a server may have echoed.

use super::step::{Outcome, Step};
use std::fmt::Write as _;

/// Columns STEP, RESULT, TIME, CAUSE, DETAIL; under a problem, its one-line remedy and what
/// the client (`docker:` or `containerd:`) prints for it.
pub fn table(target: &str, steps: &[Step]) -> String {
    let cause = |s: &Step| s.cause.map(|c| c.id).unwrap_or("-");
    let time = |s: &Step| match s.ms {
        Some(ms) => format!("{ms}ms"),
        None => "-".into(),
    };
    let w_step = steps.iter().map(|s| s.step.len()).max().unwrap_or(0).max(4);
    let w_time = steps
        .iter()
        .map(|s| time(s).len())
        .max()
        .unwrap_or(0)
        .max(4);
    let w_cause = steps
        .iter()
        .map(|s| cause(s).len())
        .max()
        .unwrap_or(0)
        .max(5);
    let indent = w_step + 2 + 7 + 2 + w_time + 2 + w_cause + 2;
    let mut out = String::new();
    let _ = writeln!(out, "regdoc check {target}\n");
    let _ = writeln!(
        out,
        "{:w_step$}  {:7}  {:>w_time$}  {:w_cause$}  DETAIL",
        "STEP", "RESULT", "TIME", "CAUSE"
    );
    for s in steps {
        let _ = writeln!(
            out,
            "{:w_step$}  {:7}  {:>w_time$}  {:w_cause$}  {}",
            s.step,
            s.result.as_str(),
            time(s),
            cause(s),
            s.detail
        );
        if let Some(r) = &s.remedy {
            let _ = writeln!(out, "{:indent$}fix: {r}", "");
        }
        if let Some(d) = &s.client_symptom {
            let _ = writeln!(out, "{:indent$}{}: {d}", "", s.client.name());
        }
    }
    let problems = steps
        .iter()
        .filter(|s| s.result == Outcome::Problem)
        .count();
    if problems == 0 {
        let _ = writeln!(out, "\nno problem found");
    } else {
        let _ = writeln!(
            out,
            "\n{problems} problem{} found; `regdoc explain <cause>` says more",
            if problems == 1 { "" } else { "s" }
        );
    }
    out
}

pub fn json(target: &str, steps: &[Step]) -> String {
    let problems = steps.iter().filter(|s| s.is_problem()).count();
    let v = serde_json::json!({
        "registry": target,
        "healthy": problems == 0,
        "problems": problems,
        "steps": steps,
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Secrets shorter than this are not searched for: masking every `a` of a one-letter
/// password would garble the report and protect nothing.
const MIN_SECRET: usize = 4;

/// `text` with every encoding of every secret masked.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut forms: Vec<String> = secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_SECRET)
        .flat_map(|s| crate::redact::encodings(s))
        .filter(|f| f.chars().count() >= MIN_SECRET)
        .collect();
    // Longest first, so a secret inside another's encoding leaves nothing of the longer one.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_string();
    for f in forms {
        if out.contains(&f) {
            out = out.replace(&f, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::catalog;
    use std::time::Duration;

    fn sample() -> Vec<Step> {
        vec![
            Step::ok(
                "dns",
                Duration::from_millis(3),
                "127.0.0.1 (loopback), from connect_to".into(),
            ),
            Step::problem(
                "GET /v2/",
                Duration::from_millis(12),
                "GET ping -> 403".into(),
            )
            .with_cause(&catalog::PUBLIC_ACCESS_RULES),
            Step::skipped("token", "GET /v2/ gave no challenge".into()),
        ]
    }

    #[test]
    fn the_table_has_a_row_per_step_with_cause_and_remedy() {
        let t = table("r.azurecr.io", &sample());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].starts_with("STEP"), "{t}");
        assert!(
            lines[3].starts_with("dns") && lines[3].contains("ok") && lines[3].contains("3ms"),
            "{t}"
        );
        assert!(
            lines[4].contains("problem") && lines[4].contains("public_access_rules"),
            "{t}"
        );
        assert!(lines[5].trim_start().starts_with("fix: "), "{t}");
        assert!(
            lines[6].starts_with("token") && lines[6].contains("skipped"),
            "{t}"
        );
        assert!(t.contains("1 problem found"), "{t}");
    }

    #[test]
    fn json_says_healthy_or_not() {
        let v: serde_json::Value = serde_json::from_str(&json("r", &sample())).unwrap();
        assert_eq!(v["healthy"], false);
        assert_eq!(v["problems"], 1);
        assert_eq!(v["steps"][1]["cause"], "public_access_rules");
        assert_eq!(v["steps"][2]["result"], "skipped");
        assert!(v["steps"][2]["ms"].is_null());
        let ok: serde_json::Value = serde_json::from_str(&json("r", &sample()[..1])).unwrap();
        assert_eq!(ok["healthy"], true);
    }

    #[test]
    fn secrets_are_masked_in_every_encoding() {
        let secret = "s3cr3t+pass/word".to_string();
        let text = format!("a {secret} b {} c", crate::redact::percent_encode(&secret));
        let out = scrub(&text, &[secret.clone(), "ab".into()]);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("a [redacted] b [redacted] c"), "{out}");
    }
}
