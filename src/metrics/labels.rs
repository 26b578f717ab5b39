//! Label sets and their bounded vocabularies.
//!
//! Every value is a `&'static str` from a closed set, or a registry name shared from the set
//! built once from `[[registry]]`: building a label set on the hot path clones at most one
//! `Arc`, and never allocates.

use crate::config::Config;
use crate::record::Mode;
use prometheus_client::encoding::EncodeLabelSet;
use std::sync::Arc;

/// The registry label of everything not named in `[[registry]]`.
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub mode: &'static str,
    pub endpoint: &'static str,
    pub registry: Arc<str>,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub cause: &'static str,
    pub endpoint: &'static str,
    pub registry: Arc<str>,
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub direction: &'static str,
    pub endpoint: &'static str,
    pub registry: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

/// The phases whose durations are a histogram: those of a connection record, and the wait for
/// a response head of an HTTP exchange (forwarding and interception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedPhase {
    Dns,
    Connect,
    UpstreamProxy,
    Tls,
    ResponseHeaders,
}

impl TimedPhase {
    pub const ALL: [TimedPhase; 5] = [
        TimedPhase::Dns,
        TimedPhase::Connect,
        TimedPhase::UpstreamProxy,
        TimedPhase::Tls,
        TimedPhase::ResponseHeaders,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimedPhase::Dns => "dns",
            TimedPhase::Connect => "connect",
            TimedPhase::UpstreamProxy => "upstream_proxy",
            TimedPhase::Tls => "tls",
            TimedPhase::ResponseHeaders => "response_headers",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Every mode, in the order of [`mode_index`].
pub const MODES: [Mode; 4] = [Mode::Refused, Mode::Tunnel, Mode::Intercept, Mode::Forward];

/// The position of `mode` in [`MODES`]. A match, not `mode as usize`: a new `Mode` fails to
/// compile here until it has a position (and a unit test checks it is its place in `MODES`).
pub fn mode_index(mode: Mode) -> usize {
    match mode {
        Mode::Refused => 0,
        Mode::Tunnel => 1,
        Mode::Intercept => 2,
        Mode::Forward => 3,
    }
}

/// The position of an endpoint class's name (`EndpointKind::as_str`) in `EndpointKind::ALL`.
pub fn endpoint_index(endpoint: &str) -> Option<usize> {
    crate::endpoint::EndpointKind::ALL
        .iter()
        .position(|k| k.as_str() == endpoint)
}

/// The word a `connection` record writes for `mode` (a test holds the two together).
pub fn mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Refused => "refused",
        Mode::Tunnel => "tunnel",
        Mode::Intercept => "intercept",
        Mode::Forward => "forward",
    }
}

pub fn outcome(failed: bool) -> &'static str {
    if failed {
        "failed"
    } else {
        "ok"
    }
}

/// The registry names a `registry` label may carry: those of `[[registry]]`, as the endpoint
/// classifier names them (`myreg` for `myreg.azurecr.io`, so that its data endpoints count
/// under it too), and `other`.
#[derive(Debug)]
pub struct RegistryNames {
    names: Vec<Arc<str>>,
    other: Arc<str>,
}

impl RegistryNames {
    pub fn from_config(cfg: &Config) -> RegistryNames {
        let hosts = cfg.registry_hosts();
        let mut names: Vec<Arc<str>> = Vec::new();
        for host in &hosts {
            let Some(name) = crate::endpoint::classify(host, &hosts).registry else {
                continue;
            };
            if name != OTHER && !names.iter().any(|n| **n == *name) {
                names.push(Arc::from(name));
            }
        }
        RegistryNames {
            names,
            other: Arc::from(OTHER),
        }
    }

    /// The label of a connection or failure whose endpoint names `registry`.
    pub fn label(&self, registry: Option<&str>) -> Arc<str> {
        self.label_at(self.index(registry)).clone()
    }

    /// How many labels there are: the named registries and `other`.
    pub fn len(&self) -> usize {
        self.names.len() + 1
    }

    /// The position of `registry`'s label, `other` last. A linear scan: `[[registry]]` lists
    /// a handful, and it saves hashing the name.
    pub fn index(&self, registry: Option<&str>) -> usize {
        registry
            .and_then(|r| self.names.iter().position(|n| **n == *r))
            .unwrap_or(self.names.len())
    }

    /// The label at `index` (from [`RegistryNames::index`]).
    pub fn label_at(&self, index: usize) -> &Arc<str> {
        self.names.get(index).unwrap_or(&self.other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_words_are_the_records_words() {
        for m in [Mode::Refused, Mode::Tunnel, Mode::Intercept, Mode::Forward] {
            assert_eq!(serde_json::to_value(m).unwrap(), mode(m));
        }
    }

    #[test]
    fn every_mode_and_endpoint_class_has_its_own_index() {
        for (i, m) in MODES.iter().enumerate() {
            assert_eq!(mode_index(*m), i);
        }
        for (i, k) in crate::endpoint::EndpointKind::ALL.iter().enumerate() {
            assert_eq!(endpoint_index(k.as_str()), Some(i));
        }
        assert_eq!(endpoint_index("made_up"), None);
    }

    #[test]
    fn only_configured_registries_are_named() {
        let cfg = Config::parse(
            "[[registry]]\nhost = \"MyReg.azurecr.io\"\n[[registry]]\nhost = \"registry.internal\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        let names = RegistryNames::from_config(&cfg);
        assert_eq!(&*names.label(Some("myreg")), "myreg");
        assert_eq!(
            &*names.label(Some("registry.internal")),
            "registry.internal"
        );
        assert_eq!(&*names.label(Some("someone-elses")), OTHER);
        assert_eq!(&*names.label(None), OTHER);
        assert_eq!(names.len(), 3);
        assert_eq!(names.index(Some("registry.internal")), 1);
        assert_eq!(names.index(None), 2);
    }
}
