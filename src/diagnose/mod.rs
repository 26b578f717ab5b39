//! Diagnosis: failures into documented causes.
//!
//! The catalog ([`catalog`]) is data; the rules ([`rules`]) are small pure functions from a
//! [`FailureEvent`] plus context to [`Finding`]s; [`context`] keeps a small bounded memory of each
//! client's and registry's recent successes, so that a data-endpoint failure after REST success is
//! recognised as such. Nothing here touches a socket.

pub mod catalog;

use crate::config::Config;
use crate::observe::{FailureEvent, HttpExchange};
use serde::Serialize;
use std::net::IpAddr;
use std::time::SystemTime;

pub use catalog::Cause;

/// How sure a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// One cause a rule found, with the facts that made it think so.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(skip)]
    pub cause: &'static Cause,
    pub confidence: Confidence,
    /// Facts, each a short sentence or `key=value`, never a secret.
    pub evidence: Vec<String>,
}

/// A success worth remembering as context: a connection or exchange that worked.
#[derive(Debug, Clone)]
pub struct SuccessNote {
    pub client: IpAddr,
    pub host: String,
    pub endpoint: crate::endpoint::Endpoint,
    pub at: SystemTime,
    /// Set when the success was an HTTP exchange seen through interception.
    pub http: Option<HttpExchange>,
}

/// The diagnosis engine: rules plus their bounded context.
pub struct Diagnoser {
    _cfg: crate::config::DiagnosisConfig,
}

impl Diagnoser {
    pub fn new(cfg: &Config) -> Self {
        Diagnoser {
            _cfg: cfg.diagnosis.clone(),
        }
    }

    /// Remember a success (REST call that worked, tunnel that carried data).
    pub fn note_success(&self, _note: SuccessNote) {}

    /// Causes of a failure, most likely first. Empty when no rule applies.
    pub fn diagnose(&self, _ev: &FailureEvent) -> Vec<Finding> {
        Vec::new()
    }
}
