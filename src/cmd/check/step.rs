//! One row of the check's report: a step, what it found, how long it took, and the cause
//! `run` would name for the same fault.

use crate::config::ClientKind;
use crate::diagnose::symptom::{client_of, client_symptom, Reply};
use crate::diagnose::{Cause, Diagnoser, Finding};
use crate::observe::FailureEvent;
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
    /// The cause's first remedy, for the client the step is worded for.
    pub remedy: Option<String>,
    /// The facts the diagnosis read, as `run` logs them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Other causes the rules found, less likely.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<&'static str>,
    /// What the client prints for this fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_symptom: Option<String>,
    /// The client `client_symptom` and `remedy` are for: `docker`, or `containerd` when the
    /// configuration says so (`diagnosis.client`) and the fault comes before any exchange (the
    /// check's own exchanges are Docker's requests).
    #[serde(serialize_with = "client_name")]
    pub client: ClientKind,
}

fn client_name<S: serde::Serializer>(c: &ClientKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

fn first_step(cause: &Cause, client: ClientKind) -> Option<String> {
    crate::diagnose::remedy::for_client(cause, client)
        .first()
        .map(|r| r.to_string())
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
            client: ClientKind::Docker,
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
        self.remedy = first_step(cause, self.client);
        self
    }

    /// Word the step for the client that would meet `ev`, as `run`'s record of it would: what
    /// that client prints (`reply`: what regdoc answered it) and that client's remedy.
    pub fn worded_for(&mut self, ev: &FailureEvent, reply: Option<Reply<'_>>, d: &Diagnoser) {
        let situation = d.situation(ev);
        self.client = client_of(ev, &situation);
        self.client_symptom = client_symptom(ev, reply, &situation).map(|s| s.text);
        if let Some(c) = self.cause {
            self.remedy = first_step(c, self.client);
        }
    }

    pub fn is_problem(&self) -> bool {
        self.result == Outcome::Problem
    }
}
