//! Open connections per client address: `max_connections_per_client`.
//!
//! `max_connections` alone let one client hold every slot (300 idle keep-alive connections
//! of one client made every other client wait). The accept loop admits a connection here before
//! it takes a slot; a client at its share is refused at once, without a slot, a task, or a read.
//!
//! Only clients with open connections have an entry, so the table never holds more than the
//! connections themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// A connection refused because its client already has its share open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client {ip} already has {open} connections open (max_connections_per_client = {max})")]
pub struct OverLimit {
    pub ip: IpAddr,
    pub open: usize,
    pub max: usize,
}

/// The count of open connections of each client. `Send + Sync`.
#[derive(Debug)]
pub struct ClientSlots {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection of a client; dropping it frees the client's slot.
#[derive(Debug)]
pub struct ClientSlot {
    slots: Arc<ClientSlots>,
    ip: IpAddr,
}

impl ClientSlots {
    pub fn new(max: usize) -> Arc<ClientSlots> {
        Arc::new(ClientSlots {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Admit one more connection of `ip` (its IPv4 address for an IPv4 client of a dual-stack
    /// listener, as the policy names it), unless it has `max` open already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ClientSlot, OverLimit> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return Err(OverLimit {
                ip,
                open: *n,
                max: self.max,
            });
        }
        *n += 1;
        Ok(ClientSlot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections `ip` has open.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }

    /// Clients with connections open.
    pub fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_at_its_share_is_refused_others_are_not_and_slots_come_back() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let one = slots.admit(a).unwrap();
        let two = slots.admit(a).unwrap();
        assert_eq!(
            slots.admit(a).unwrap_err(),
            OverLimit {
                ip: a,
                open: 2,
                max: 2
            }
        );
        let other = slots.admit(b).unwrap();
        assert_eq!((slots.open(a), slots.open(b)), (2, 1));
        drop(one);
        let three = slots.admit(a).unwrap();
        drop((two, three, other));
        assert_eq!(slots.clients(), 0, "no entry outlives its connections");
    }

    #[test]
    fn the_refusal_names_the_setting() {
        let e = OverLimit {
            ip: "127.0.0.1".parse().unwrap(),
            open: 2,
            max: 2,
        };
        assert_eq!(
            e.to_string(),
            "client 127.0.0.1 already has 2 connections open (max_connections_per_client = 2)"
        );
    }
}
