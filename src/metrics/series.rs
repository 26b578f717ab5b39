//! Direct handles to the counter series every connection touches.
//!
//! A `Family` finds a series by hashing its whole label set under a read lock. Three such
//! lookups per connection (the connection, bytes up, bytes down) came to about 2 % of the
//! instructions of a tunnel's whole life (benches/metrics-cost.sh). Their labels come from
//! small closed sets, so each series has a slot in a table indexed by the labels' positions:
//! filled once from the family (which stays what the exposition reads, and shares the
//! counter), then read with neither lock nor hash.

use super::labels::{self, BytesLabels, ConnectionLabels, RegistryNames};
use crate::endpoint::EndpointKind;
use crate::record::Mode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::OnceLock;

const ENDPOINTS: usize = EndpointKind::ALL.len();
/// `up`, `down`.
pub const DIRECTIONS: [&str; 2] = ["up", "down"];

/// The slots of `regdoc_connections_total` and `regdoc_bytes_total`.
#[derive(Debug)]
pub struct ConnectionSeries {
    registries: usize,
    /// `[mode][endpoint][registry][failed]`
    connections: Box<[OnceLock<Counter>]>,
    /// `[direction][endpoint][registry]`
    bytes: Box<[OnceLock<Counter>]>,
}

impl ConnectionSeries {
    pub fn new(registries: &RegistryNames) -> ConnectionSeries {
        let r = registries.len();
        let slots = |n: usize| (0..n).map(|_| OnceLock::new()).collect();
        ConnectionSeries {
            registries: r,
            connections: slots(labels::MODES.len() * ENDPOINTS * r * 2),
            bytes: slots(DIRECTIONS.len() * ENDPOINTS * r),
        }
    }

    /// The counter of connections with these labels. `endpoint` and `registry` are positions
    /// ([`labels::endpoint_index`], [`RegistryNames::index`]).
    #[allow(clippy::too_many_arguments)]
    pub fn connection<'a>(
        &'a self,
        family: &Family<ConnectionLabels, Counter>,
        names: &RegistryNames,
        mode: Mode,
        endpoint: usize,
        registry: usize,
        failed: bool,
    ) -> &'a Counter {
        let i = ((labels::mode_index(mode) * ENDPOINTS + endpoint) * self.registries + registry)
            * 2
            + usize::from(failed);
        self.connections[i].get_or_init(|| {
            family
                .get_or_create(&ConnectionLabels {
                    mode: labels::mode(mode),
                    endpoint: EndpointKind::ALL[endpoint].as_str(),
                    registry: names.label_at(registry).clone(),
                    outcome: labels::outcome(failed),
                })
                .clone()
        })
    }

    /// The counter of bytes in `direction` (a position in [`DIRECTIONS`]) with these labels.
    pub fn bytes<'a>(
        &'a self,
        family: &Family<BytesLabels, Counter>,
        names: &RegistryNames,
        direction: usize,
        endpoint: usize,
        registry: usize,
    ) -> &'a Counter {
        let i = (direction * ENDPOINTS + endpoint) * self.registries + registry;
        self.bytes[i].get_or_init(|| {
            family
                .get_or_create(&BytesLabels {
                    direction: DIRECTIONS[direction],
                    endpoint: EndpointKind::ALL[endpoint].as_str(),
                    registry: names.label_at(registry).clone(),
                })
                .clone()
        })
    }
}
