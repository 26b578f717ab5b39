//! Kept-alive connections waiting for their next request, shed first when slots run short.
//!
//! A kept-alive HTTP connection (plain forwarding, interception) holds a slot of
//! `max_connections` between its requests while doing nothing; 300 of them once made a new
//! client wait 26 s for a slot. Each such connection registers here and marks every exchange
//! it serves; when the accept loop finds every slot taken it closes the connection that has
//! waited longest for its next request (a graceful close: a request that raced in is still
//! answered) and gives its slot to the new client. Passthrough tunnels are never shed: regdoc
//! cannot tell one between two requests from one in the middle of a transfer.
//!
//! Marking an exchange costs two atomic operations; the table is only locked to register, to
//! unregister, and to pick a connection to shed.

use http_body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::Notify;

/// The kept-alive connections of one server. `Send + Sync`.
#[derive(Debug)]
pub struct IdleConnections {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<State>>>,
}

#[derive(Debug)]
struct State {
    epoch: Instant,
    /// Exchanges in progress (HTTP/2 serves several at once).
    active: AtomicU32,
    /// Since when the connection waits for its next request, in milliseconds after `epoch`
    /// plus one; 0 while it serves one, before its first, and once it is being shed.
    idle_since: AtomicU64,
    shed: Notify,
}

/// A connection registered in [`IdleConnections`]; unregistered when dropped.
#[derive(Debug)]
pub struct KeptAlive {
    registry: Arc<IdleConnections>,
    id: u64,
    state: Arc<State>,
}

/// One exchange in progress on a [`KeptAlive`] connection; the connection waits for its next
/// request again once every exchange is dropped.
#[derive(Debug)]
pub struct Exchange {
    state: Arc<State>,
}

impl IdleConnections {
    pub fn new() -> Arc<IdleConnections> {
        Arc::new(IdleConnections {
            epoch: Instant::now(),
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Register connection `id`. It is not idle until it has served an exchange.
    pub fn register(self: &Arc<Self>, id: u64) -> KeptAlive {
        let state = Arc::new(State {
            epoch: self.epoch,
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            shed: Notify::new(),
        });
        self.lock().insert(id, state.clone());
        KeptAlive {
            registry: self.clone(),
            id,
            state,
        }
    }

    /// Close the connection that has waited longest for its next request, if one waits; whether
    /// one did. The connection closes itself (see [`KeptAlive::shed`]); its slot comes free
    /// when it has.
    pub fn shed_one(&self) -> bool {
        let conns = self.lock();
        let oldest = conns
            .values()
            .filter(|s| s.active.load(Ordering::Acquire) == 0)
            .filter_map(|s| match s.idle_since.load(Ordering::Acquire) {
                0 => None,
                since => Some((since, s)),
            })
            .min_by_key(|(since, _)| *since);
        let Some((_, s)) = oldest else {
            return false;
        };
        // Not a candidate again: the next shortage must find another connection.
        s.idle_since.store(0, Ordering::Release);
        s.shed.notify_one();
        true
    }

    /// Registered connections waiting for their next request.
    pub fn idle(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| {
                s.active.load(Ordering::Acquire) == 0 && s.idle_since.load(Ordering::Acquire) != 0
            })
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<State>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeptAlive {
    /// Mark an exchange in progress until the returned guard is dropped: a response's body
    /// carries it ([`Guarded`]), so the connection counts as busy until hyper has written it.
    pub fn exchange(&self) -> Exchange {
        self.state.active.fetch_add(1, Ordering::AcqRel);
        self.state.idle_since.store(0, Ordering::Release);
        Exchange {
            state: self.state.clone(),
        }
    }

    /// Completes when the accept loop chose this connection to close for a new client.
    pub async fn shed(&self) {
        self.state.shed.notified().await;
    }
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.state.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A request that starts right now may overwrite this or be overwritten by it; a
            // connection shed while it serves a request closes gracefully after answering it.
            let ms = u64::try_from(self.state.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.state.idle_since.store(ms + 1, Ordering::Release);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its [`Exchange`]: hyper drops the body once it has written
    /// it whole (or the connection ended), and only then does the connection wait for its
    /// next request.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        exchange: Option<Exchange>,
    }
}

impl<B> Guarded<B> {
    /// `exchange` is `None` for a connection that is not registered.
    pub fn new(inner: B, exchange: Option<Exchange>) -> Self {
        Guarded { inner, exchange }
    }
}

impl<B: Body> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_a_connection_between_requests_is_shed_and_the_longest_waiting_first() {
        let idle = IdleConnections::new();
        let fresh = idle.register(1);
        let (a, b) = (idle.register(2), idle.register(3));
        assert!(
            !idle.shed_one(),
            "no connection has finished an exchange yet"
        );
        drop(a.exchange());
        std::thread::sleep(Duration::from_millis(5));
        drop(b.exchange());
        let busy = b.exchange();
        assert_eq!(idle.idle(), 1);
        assert!(idle.shed_one());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), a.shed())
                .await
                .expect("the waiting connection is told");
        });
        assert!(
            !idle.shed_one(),
            "a serving connection is not shed, nor one twice"
        );
        drop(busy);
        assert!(idle.shed_one(), "b waits for its next request now");
        drop((fresh, a, b));
        assert!(
            idle.lock().is_empty(),
            "dropped connections are unregistered"
        );
    }

    #[test]
    fn concurrent_exchanges_keep_a_connection_busy_until_the_last_ends() {
        let idle = IdleConnections::new();
        let c = idle.register(1);
        let (one, two) = (c.exchange(), c.exchange());
        drop(one);
        assert_eq!(idle.idle(), 0);
        drop(two);
        assert_eq!(idle.idle(), 1);
    }
}
