//! One row of the check's report: a step, what it found, how long it took, and the cause
//! `run` would name for the same fault.

use crate::diagnose::{Cause, Finding};
use serde::Serialize;
use std::time::Duration;

pub use crate::cmd::outcome::Outcome;

/// One step of the check.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `dns`, `tcp`, `upstream proxy`, `tls`, `GET /v2/`, `token`, ...
    pub step: String,
    pub result: Outcome,
    /// Milliseconds the step took; None when it did not run.
    pub ms: Option<u64>,
    /// What was seen (ok), what went wrong (problem), or why it did not run (skipped).
    pub detail: String,
    /// The cause id `run` gives the same fault.
    #[serde(serialize_with = "cause_id")]
    pub cause: Option<&'static Cause>,
    /// The cause's first remedy.
    pub remedy: Option<String>,
    /// The facts the diagnosis read, as `run` logs them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Other causes the rules found, less likely.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<&'static str>,
    /// What the Docker client prints for this fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_symptom: Option<String>,
}

fn cause_id<S: serde::Serializer>(c: &Option<&'static Cause>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_str(c.id),
        None => s.serialize_none(),
    }
}

impl Step {
    pub fn ok(step: &str, took: Duration, detail: String) -> Step {
        Step {
            step: step.to_string(),
            result: Outcome::Ok,
            ms: Some(took.as_millis() as u64),
            detail,
            cause: None,
            remedy: None,
            evidence: Vec::new(),
            alternatives: Vec::new(),
            client_symptom: None,
        }
    }

    pub fn skipped(step: &str, why: String) -> Step {
        Step {
            result: Outcome::Skipped,
            ms: None,
            ..Step::ok(step, Duration::ZERO, why)
        }
    }

    /// A problem with no cause from the catalog (regdoc has no rule for it).
    pub fn problem(step: &str, took: Duration, detail: String) -> Step {
        Step {
            result: Outcome::Problem,
            ..Step::ok(step, took, detail)
        }
    }

    /// A problem judged by the diagnosis: the first finding is the cause, the others
    /// alternatives, as in a failure record.
    pub fn diagnosed(step: &str, took: Duration, detail: String, findings: &[Finding]) -> Step {
        let mut s = Step::problem(step, took, detail);
        if let Some(first) = findings.first() {
            s = s.with_cause(first.cause);
            s.evidence = first.evidence.clone();
            s.alternatives = findings[1..].iter().map(|f| f.cause.id).collect();
        }
        s
    }

    pub fn with_cause(mut self, cause: &'static Cause) -> Step {
        self.cause = Some(cause);
        self.remedy = cause.remedy.first().map(|r| r.to_string());
        self
    }

    pub fn is_problem(&self) -> bool {
        self.result == Outcome::Problem
    }
}
