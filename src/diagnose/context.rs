//! A small, bounded memory of recent successes, per client and per registry.
//!
//! A failure alone often cannot tell a blocked data endpoint from a dead registry; the same
//! failure right after the REST endpoint answered for the same registry can. This module keeps
//! just enough to say so: when the REST endpoint last worked, which data hosts and regions the
//! registry redirected to, which data hosts worked, and the claims (never the token) of the last
//! token each client was issued. Every table is capped; the oldest entry goes first.

use crate::endpoint::{Endpoint, EndpointKind};
use crate::http::jwt::Claims;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Two `GET /v2/` of one client to one registry this close together are a `docker login` (its
/// challenge ping, then its authenticated ping; both within one 15 s client timeout).
pub const PING_PAIR_WINDOW: Duration = Duration::from_secs(15);

/// Entries kept per table by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// How many token lifetimes an issued token's claims are remembered. A token is used past its
/// end exactly when the expiry rules have something to explain, so the note must outlive the
/// token: four 3-hour lifetimes cover a job that logged in in the morning and fails in the
/// afternoon. The tables' capacity bounds the memory either way.
pub const TOKEN_MEMORY_LIFETIMES: u32 = 4;

/// A map that forgets its least recently written entry beyond `cap` entries.
#[derive(Debug)]
struct Bounded<K, V> {
    cap: usize,
    seq: u64,
    map: HashMap<K, (u64, V)>,
    order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Bounded {
            cap: cap.max(1),
            seq: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        self.seq += 1;
        if let Some((old, _)) = self.map.insert(key.clone(), (self.seq, value)) {
            self.order.remove(&old);
        }
        self.order.insert(self.seq, key);
        while self.map.len() > self.cap {
            match self.order.pop_first() {
                Some((_, k)) => {
                    self.map.remove(&k);
                }
                None => break,
            }
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// What regdoc knows about a data host: which registry sent clients there, and when it worked.
#[derive(Debug, Clone)]
struct DataHost {
    registry: String,
    region: Option<String>,
    host: String,
    redirected_at: Option<SystemTime>,
    ok_at: Option<SystemTime>,
}

/// Claims of a token a registry issued to a client, with the scopes the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenNote {
    pub claims: Claims,
    pub requested_scopes: Vec<String>,
    pub at: SystemTime,
}

#[derive(Debug)]
struct Tables {
    rest_ok: Bounded<(IpAddr, String), SystemTime>,
    rest_ok_any: Bounded<String, SystemTime>,
    data_hosts: Bounded<String, DataHost>,
    tokens: Bounded<(IpAddr, String), TokenNote>,
    /// Last and previous `GET /v2/` of a client to a registry target (`host:port`).
    pings: Bounded<(IpAddr, String), (SystemTime, Option<SystemTime>)>,
    /// Registry target (`host:port`) whose Bearer challenge named this token host as realm.
    realms: Bounded<(IpAddr, String), String>,
}

/// The shared context. `Send + Sync`; one short lock per note or view.
#[derive(Debug)]
pub struct Context {
    window: Duration,
    /// Issued tokens stay relevant past their lifetime (see [`TOKEN_MEMORY_LIFETIMES`]).
    token_window: Duration,
    tables: Mutex<Tables>,
}

/// What the context knows that bears on one failure, taken at one instant. Rules read only this.
#[derive(Debug, Clone)]
pub struct ContextView {
    pub now: SystemTime,
    /// Registry the failing host belongs to (from its name, or from a redirect that led there).
    pub registry: Option<String>,
    /// Region of the failing data host, when known.
    pub region: Option<String>,
    /// How long ago the REST endpoint of that registry worked for this client.
    pub rest_ok_age: Option<Duration>,
    /// How long ago it worked for any client.
    pub rest_ok_any_age: Option<Duration>,
    /// How long ago the registry redirected a client to the failing host.
    pub redirected_age: Option<Duration>,
    /// Data hosts of the same registry that worked within the window, `host (region)`.
    pub data_ok: Vec<String>,
    /// Last token issued to this client by this registry.
    pub token: Option<TokenNote>,
}

impl ContextView {
    /// A view with no memory, e.g. for a first connection or for tests.
    pub fn empty(now: SystemTime) -> Self {
        ContextView {
            now,
            registry: None,
            region: None,
            rest_ok_age: None,
            rest_ok_any_age: None,
            redirected_age: None,
            data_ok: Vec::new(),
            token: None,
        }
    }
}

/// Age of `at` if within `window`. A clock that stepped back makes `at` look future: count it
/// as just now.
fn within(now: SystemTime, at: SystemTime, window: Duration) -> Option<Duration> {
    let age = now.duration_since(at).unwrap_or(Duration::ZERO);
    (age <= window).then_some(age)
}

fn key(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

impl Context {
    /// A context remembering successes for `window` and issued tokens for the longer of
    /// `window` and [`TOKEN_MEMORY_LIFETIMES`] × `token_lifetime`, each table holding at most
    /// `capacity` entries.
    pub fn new(window: Duration, token_lifetime: Duration, capacity: usize) -> Self {
        Context {
            window,
            token_window: window.max(token_lifetime.saturating_mul(TOKEN_MEMORY_LIFETIMES)),
            tables: Mutex::new(Tables {
                rest_ok: Bounded::new(capacity),
                rest_ok_any: Bounded::new(capacity),
                data_hosts: Bounded::new(capacity),
                tokens: Bounded::new(capacity),
                pings: Bounded::new(capacity),
                realms: Bounded::new(capacity),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The REST endpoint of `registry` answered `client`.
    pub fn note_rest_ok(&self, client: IpAddr, registry: &str, at: SystemTime) {
        let registry = key(registry);
        let mut t = self.lock();
        t.rest_ok.insert((client, registry.clone()), at);
        t.rest_ok_any.insert(registry, at);
    }

    /// `registry` redirected a client to `data_host` (a data endpoint or a storage account).
    pub fn note_redirect(
        &self,
        registry: &str,
        data_host: &str,
        region: Option<&str>,
        at: SystemTime,
    ) {
        let host = key(data_host);
        let mut t = self.lock();
        let mut entry = t.data_hosts.get(&host).cloned().unwrap_or(DataHost {
            registry: key(registry),
            region: region.map(str::to_string),
            host: host.clone(),
            redirected_at: None,
            ok_at: None,
        });
        entry.registry = key(registry);
        if region.is_some() {
            entry.region = region.map(str::to_string);
        }
        entry.redirected_at = Some(at);
        t.data_hosts.insert(host, entry);
    }

    /// A tunnel to a data host carried data. Unknown hosts without a registry are not kept.
    pub fn note_data_ok(&self, endpoint: &Endpoint, data_host: &str, at: SystemTime) {
        let host = key(data_host);
        let mut t = self.lock();
        let known = t.data_hosts.get(&host).cloned();
        let registry = match (&known, &endpoint.registry) {
            (Some(k), _) => k.registry.clone(),
            (None, Some(r)) => key(r),
            (None, None) => return,
        };
        let mut entry = known.unwrap_or(DataHost {
            registry,
            region: endpoint.region.clone(),
            host: host.clone(),
            redirected_at: None,
            ok_at: None,
        });
        entry.ok_at = Some(at);
        t.data_hosts.insert(host, entry);
    }

    /// A registry issued `client` a token with these claims.
    pub fn note_token(&self, client: IpAddr, registry: &str, note: TokenNote) {
        self.lock().tokens.insert((client, key(registry)), note);
    }

    /// `client` sent `GET /v2/` to `target`. Returns whether it had sent one within
    /// [`PING_PAIR_WINDOW`] before: `docker login` pings twice in a row (once to learn the
    /// challenge, once with the credentials), a pull pings once and moves on.
    pub fn note_ping(&self, client: IpAddr, target: &str, at: SystemTime) -> bool {
        let k = (client, key(target));
        let mut t = self.lock();
        let before = t.pings.get(&k).map(|(last, _)| *last);
        t.pings.insert(k, (at, before));
        before.is_some_and(|b| within(at, b, PING_PAIR_WINDOW).is_some())
    }

    /// Whether the last `GET /v2/` of `client` to `target` followed another one closely.
    pub fn pinged_twice(&self, client: IpAddr, target: &str, now: SystemTime) -> bool {
        let t = self.lock();
        match t.pings.get(&(client, key(target))) {
            Some((last, Some(before))) => {
                within(now, *last, PING_PAIR_WINDOW).is_some()
                    && within(*last, *before, PING_PAIR_WINDOW).is_some()
            }
            _ => false,
        }
    }

    /// The registry `target` challenged `client` to get a token from `realm_host`.
    pub fn note_realm(&self, client: IpAddr, realm_host: &str, target: &str) {
        self.lock()
            .realms
            .insert((client, key(realm_host)), key(target));
    }

    /// The registry target (`host:port`) that sent `client` to the token host `realm_host`.
    pub fn registry_for_realm(&self, client: IpAddr, realm_host: &str) -> Option<String> {
        self.lock().realms.get(&(client, key(realm_host))).cloned()
    }

    /// Registry and region a data host belongs to, learnt from its name or from redirects.
    fn registry_of(
        t: &Tables,
        host: &str,
        endpoint: &Endpoint,
    ) -> (Option<String>, Option<String>) {
        if let Some(r) = &endpoint.registry {
            return (Some(key(r)), endpoint.region.clone());
        }
        match t.data_hosts.get(&key(host)) {
            Some(d) => (Some(d.registry.clone()), d.region.clone()),
            None => (None, endpoint.region.clone()),
        }
    }

    fn age(&self, now: SystemTime, at: SystemTime) -> Option<Duration> {
        within(now, at, self.window)
    }

    /// Everything the context knows that bears on a failure of `client` reaching `host`.
    pub fn view(
        &self,
        client: IpAddr,
        host: &str,
        endpoint: &Endpoint,
        now: SystemTime,
    ) -> ContextView {
        let t = self.lock();
        let (registry, region) = Self::registry_of(&t, host, endpoint);
        let mut view = ContextView::empty(now);
        view.region = region;
        let Some(reg) = registry else {
            return view;
        };
        view.rest_ok_age = t
            .rest_ok
            .get(&(client, reg.clone()))
            .and_then(|at| self.age(now, *at));
        view.rest_ok_any_age = t.rest_ok_any.get(&reg).and_then(|at| self.age(now, *at));
        let host = key(host);
        // Only data hosts (named or learnt from a redirect) need the data-path memory; the scan
        // below is skipped for the REST exchanges interception judges one after another.
        if endpoint.kind.is_data() || endpoint.kind == EndpointKind::Other {
            view.redirected_age = t
                .data_hosts
                .get(&host)
                .and_then(|d| d.redirected_at)
                .and_then(|at| self.age(now, at));
            view.data_ok = self.data_ok(&t, &reg, &host, now);
        }
        view.token = t
            .tokens
            .get(&(client, reg.clone()))
            .filter(|n| within(now, n.at, self.token_window).is_some())
            .cloned();
        view.registry = Some(reg);
        view
    }

    /// Other data hosts of `reg` that worked within the window, `host (region)`.
    fn data_ok(&self, t: &Tables, reg: &str, host: &str, now: SystemTime) -> Vec<String> {
        let mut data_ok: Vec<String> = t
            .data_hosts
            .values()
            .filter(|d| d.registry == reg && d.host != host)
            .filter(|d| d.ok_at.and_then(|at| self.age(now, at)).is_some())
            .map(|d| match &d.region {
                Some(r) => format!("{} ({r})", d.host),
                None => d.host.clone(),
            })
            .collect();
        data_ok.sort();
        data_ok.truncate(8);
        data_ok
    }

    /// Total entries held, for tests and metrics.
    pub fn len(&self) -> usize {
        let t = self.lock();
        t.rest_ok.len()
            + t.rest_ok_any.len()
            + t.data_hosts.len()
            + t.tokens.len()
            + t.pings.len()
            + t.realms.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::classify;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 1, 0, last])
    }

    #[test]
    fn rest_success_is_seen_from_the_data_endpoint_within_the_window() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 16);
        ctx.note_rest_ok(ip(1), "myreg", at(0));
        let ep = classify("myreg.westeurope.data.azurecr.io", &[]);
        let v = ctx.view(ip(1), "myreg.westeurope.data.azurecr.io", &ep, at(30));
        assert_eq!(v.registry.as_deref(), Some("myreg"));
        assert_eq!(v.region.as_deref(), Some("westeurope"));
        assert_eq!(v.rest_ok_age, Some(Duration::from_secs(30)));
        let other_client = ctx.view(ip(2), "myreg.westeurope.data.azurecr.io", &ep, at(30));
        assert_eq!(other_client.rest_ok_age, None);
        assert_eq!(other_client.rest_ok_any_age, Some(Duration::from_secs(30)));
        let late = ctx.view(ip(1), "myreg.westeurope.data.azurecr.io", &ep, at(601));
        assert_eq!(late.rest_ok_age, None);
    }

    #[test]
    fn blob_host_learns_its_registry_from_a_redirect() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 16);
        ctx.note_redirect("myreg", "weumyreg123.blob.core.windows.net", None, at(5));
        let ep = classify("weumyreg123.blob.core.windows.net", &[]);
        let v = ctx.view(ip(1), "weumyreg123.blob.core.windows.net", &ep, at(10));
        assert_eq!(v.registry.as_deref(), Some("myreg"));
        assert_eq!(v.redirected_age, Some(Duration::from_secs(5)));
    }

    #[test]
    fn other_working_regions_are_listed() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 16);
        let eus = classify("myreg.eastus.data.azurecr.io", &[]);
        ctx.note_data_ok(&eus, "myreg.eastus.data.azurecr.io", at(1));
        let weu = classify("myreg.westeurope.data.azurecr.io", &[]);
        let v = ctx.view(ip(1), "myreg.westeurope.data.azurecr.io", &weu, at(2));
        assert_eq!(v.data_ok, vec!["myreg.eastus.data.azurecr.io (eastus)"]);
    }

    #[test]
    fn issued_tokens_outlive_the_success_window() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 16);
        ctx.note_rest_ok(ip(1), "myreg", at(0));
        let note = TokenNote {
            claims: Claims {
                exp: Some(1_800_010_800),
                ..Claims::default()
            },
            requested_scopes: vec!["repository:app:pull".into()],
            at: at(0),
        };
        ctx.note_token(ip(1), "myreg", note.clone());
        let ep = classify("myreg.azurecr.io", &[]);
        let v = ctx.view(ip(1), "myreg.azurecr.io", &ep, at(3600));
        assert_eq!(v.rest_ok_age, None);
        assert_eq!(v.token, Some(note.clone()));
        // Past the token's lifetime the note still explains a refusal...
        assert_eq!(
            ctx.view(ip(1), "myreg.azurecr.io", &ep, at(10_801)).token,
            Some(note)
        );
        // ...until four lifetimes have gone by.
        assert_eq!(
            ctx.view(ip(1), "myreg.azurecr.io", &ep, at(4 * 10_800 + 1))
                .token,
            None
        );
    }

    #[test]
    fn tables_are_bounded_and_forget_the_oldest() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 4);
        for i in 0..10u8 {
            ctx.note_rest_ok(ip(i), &format!("reg{i}"), at(u64::from(i)));
        }
        // Two tables (per client, per registry), four entries each.
        assert_eq!(ctx.len(), 8);
        let ep = classify("reg0.azurecr.io", &[]);
        assert_eq!(
            ctx.view(ip(0), "reg0.azurecr.io", &ep, at(20)).rest_ok_age,
            None
        );
        let ep = classify("reg9.azurecr.io", &[]);
        assert!(ctx
            .view(ip(9), "reg9.azurecr.io", &ep, at(20))
            .rest_ok_age
            .is_some());
    }

    #[test]
    fn rewriting_a_key_refreshes_it_instead_of_growing() {
        let mut b: Bounded<u8, u8> = Bounded::new(2);
        b.insert(1, 1);
        b.insert(2, 2);
        b.insert(1, 3);
        b.insert(3, 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(&1), Some(&3));
        assert_eq!(b.get(&2), None);
        assert_eq!(b.order.len(), 2);
    }

    #[test]
    fn a_clock_step_back_does_not_panic_or_hide_context() {
        let ctx = Context::new(Duration::from_secs(600), Duration::from_secs(10_800), 4);
        ctx.note_rest_ok(ip(1), "myreg", at(100));
        let ep = classify("myreg.azurecr.io", &[]);
        let v = ctx.view(ip(1), "myreg.azurecr.io", &ep, at(50));
        assert_eq!(v.rest_ok_age, Some(Duration::ZERO));
    }
}
