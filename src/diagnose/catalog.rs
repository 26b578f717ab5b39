//! The cause catalog, as data.

use serde::Serialize;

/// A documented cause of a registry failure.
#[derive(Debug, Serialize)]
pub struct Cause {
    /// Stable snake_case id: users, dashboards and alerts rely on it. Never renamed.
    pub id: &'static str,
    pub title: &'static str,
    /// A few words for a reason phrase: `"dns_lookup_failed"` style is too terse, a sentence too
    /// long; e.g. "registry name does not resolve".
    pub short: &'static str,
    /// Concrete steps.
    pub remedy: &'static [&'static str],
    /// Public article URL with its section anchor.
    pub doc: &'static str,
    /// What the Docker client prints for this failure.
    pub client_symptom: &'static str,
}

/// Every cause regdoc knows.
pub static CAUSES: &[Cause] = &[];

/// Look a cause up by id.
pub fn by_id(id: &str) -> Option<&'static Cause> {
    CAUSES.iter().find(|c| c.id == id)
}
