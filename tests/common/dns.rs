//! A real DNS server on loopback for tests, so no query ever leaves the machine.
//!
//! It speaks the wire protocol over UDP and TCP on the same port, answers from a [`Zone`] the
//! test builds (A, AAAA, CNAME chains, NXDOMAIN for every other name, and failure modes), and
//! logs every question so a test can assert that a lookup was or was not made.
//!
//! ```ignore
//! use common::dns;
//! let zone = dns::Zone::new()
//!     .cname("myreg.azurecr.io", "myreg.privatelink.azurecr.io")
//!     .a("myreg.privatelink.azurecr.io", [10, 1, 2, 3]);
//! let server = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), zone);
//! // point the resolver at server.local_addr()
//! ```

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// TTL of every answer.
const TTL: u32 = 60;
/// Longest CNAME chain followed before answering SERVFAIL (loops in a zone are a test bug).
const MAX_CHAIN: usize = 16;

/// What the server knows. Names are case-insensitive, with or without the trailing dot.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    a: BTreeMap<String, Vec<Ipv4Addr>>,
    aaaa: BTreeMap<String, Vec<Ipv6Addr>>,
    cname: BTreeMap<String, String>,
    /// Names that exist without address records (NOERROR, empty answer).
    nodata: BTreeSet<String>,
    servfail: BTreeSet<String>,
    /// Names never answered: the client times out.
    silent: BTreeSet<String>,
    /// Answer every UDP question with an empty truncated reply, forcing TCP.
    truncate_udp: bool,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Add an A record (call again for more addresses).
    pub fn a(mut self, name: &str, ip: impl Into<Ipv4Addr>) -> Zone {
        self.a.entry(norm(name)).or_default().push(ip.into());
        self
    }

    /// Add an AAAA record.
    pub fn aaaa(mut self, name: &str, ip: impl Into<Ipv6Addr>) -> Zone {
        self.aaaa.entry(norm(name)).or_default().push(ip.into());
        self
    }

    /// `name CNAME target`; chains are followed in answers, as a recursive resolver does.
    pub fn cname(mut self, name: &str, target: &str) -> Zone {
        self.cname.insert(norm(name), norm(target));
        self
    }

    /// The name exists but has no address records (NOERROR with an empty answer).
    pub fn nodata(mut self, name: &str) -> Zone {
        self.nodata.insert(norm(name));
        self
    }

    /// Questions about `name` (or reaching it through a CNAME) get SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zone {
        self.servfail.insert(norm(name));
        self
    }

    /// Questions about `name` are never answered.
    pub fn silent(mut self, name: &str) -> Zone {
        self.silent.insert(norm(name));
        self
    }

    /// Every UDP answer is empty with the TC bit set, so clients must retry over TCP.
    pub fn truncate_udp(mut self) -> Zone {
        self.truncate_udp = true;
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.a.contains_key(name)
            || self.aaaa.contains_key(name)
            || self.cname.contains_key(name)
            || self.nodata.contains(name)
    }
}

/// One question the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Lower case, without the trailing dot.
    pub name: String,
    pub rtype: RecordType,
    pub tcp: bool,
}

#[derive(Default)]
struct State {
    zone: Mutex<Zone>,
    log: Mutex<Vec<Question>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the server's state from the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fqdn(name: &str) -> Name {
    Name::from_ascii(format!("{name}.")).expect("zone names are valid DNS names")
}

impl State {
    /// The reply to one wire message, or `None` to stay silent.
    fn answer(&self, wire: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(wire).ok()?;
        if query.message_type() != MessageType::Query {
            return None;
        }
        let zone = lock(&self.zone).clone();
        let mut reply = Message::new();
        reply
            .set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true);
        let Some(q) = query.queries().first() else {
            reply.set_response_code(ResponseCode::FormErr);
            return reply.to_vec().ok();
        };
        reply.add_query(q.clone());
        let qname = norm(&q.name().to_ascii());
        let qtype = q.query_type();
        lock(&self.log).push(Question {
            name: qname.clone(),
            rtype: qtype,
            tcp,
        });
        if zone.silent.contains(&qname) {
            return None;
        }
        if zone.truncate_udp && !tcp {
            reply.set_truncated(true);
            return reply.to_vec().ok();
        }

        let mut cur = qname;
        let mut steps = 0;
        if qtype != RecordType::CNAME {
            while let Some(next) = zone.cname.get(&cur) {
                if zone.silent.contains(next) {
                    return None;
                }
                reply.add_answer(Record::from_rdata(
                    fqdn(&cur),
                    TTL,
                    RData::CNAME(CNAME(fqdn(next))),
                ));
                cur = next.clone();
                steps += 1;
                if steps > MAX_CHAIN {
                    reply.set_response_code(ResponseCode::ServFail);
                    return reply.to_vec().ok();
                }
            }
        }
        if zone.servfail.contains(&cur) {
            let mut fail = Message::new();
            fail.set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true)
                .set_response_code(ResponseCode::ServFail)
                .add_query(q.clone());
            return fail.to_vec().ok();
        }
        let owner = fqdn(&cur);
        match qtype {
            RecordType::A => {
                for ip in zone.a.get(&cur).into_iter().flatten() {
                    reply.add_answer(Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip))));
                }
            }
            RecordType::AAAA => {
                for ip in zone.aaaa.get(&cur).into_iter().flatten() {
                    reply.add_answer(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::AAAA(AAAA(*ip)),
                    ));
                }
            }
            RecordType::CNAME => {
                if let Some(t) = zone.cname.get(&cur) {
                    reply.add_answer(Record::from_rdata(owner, TTL, RData::CNAME(CNAME(fqdn(t)))));
                }
            }
            _ => {}
        }
        if !zone.exists(&cur) {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        reply.to_vec().ok()
    }
}

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Serve `zone` on `addr` over UDP and TCP (the same port). `127.0.0.1:0` picks a free port;
    /// a fixed address such as `127.0.0.53:53` is used as given. Panics if it cannot bind: this
    /// is test support.
    pub fn start(addr: SocketAddr, zone: Zone) -> TestDns {
        let (udp, tcp) = bind_pair(addr);
        let addr = udp.local_addr().expect("bound UDP socket has an address");
        let state = Arc::new(State {
            zone: Mutex::new(zone),
            log: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-dns-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test DNS runtime");
                rt.block_on(serve(udp, tcp, st, stop_rx));
            })
            .expect("test DNS thread");
        TestDns {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The address (UDP and TCP) to point resolvers at.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace the zone while running (e.g. a private DNS zone gets linked mid-test).
    pub fn set_zone(&self, zone: Zone) {
        *lock(&self.state.zone) = zone;
    }

    /// Every question received so far, in order.
    pub fn questions(&self) -> Vec<Question> {
        lock(&self.state.log).clone()
    }

    /// Names asked so far, in order (one entry per question, so A and AAAA both appear).
    pub fn queries(&self) -> Vec<String> {
        self.questions().into_iter().map(|q| q.name).collect()
    }

    /// Whether `name` was asked about (any type, any transport).
    pub fn was_asked(&self, name: &str) -> bool {
        let name = norm(name);
        lock(&self.state.log).iter().any(|q| q.name == name)
    }

    /// Forget the questions logged so far.
    pub fn clear_log(&self) {
        lock(&self.state.log).clear();
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// UDP and TCP on the same port. With port 0 the kernel picks the UDP port, which may be taken
/// for TCP; a few fresh tries settle it.
fn bind_pair(addr: SocketAddr) -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind(addr).expect("test DNS: bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        match std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true).expect("nonblocking UDP");
                tcp.set_nonblocking(true).expect("nonblocking TCP");
                return (udp, tcp);
            }
            Err(e) if addr.port() != 0 => panic!("test DNS: bind TCP {addr}: {e}"),
            Err(_) => continue,
        }
    }
    panic!(
        "test DNS: no port free for both UDP and TCP on {}",
        addr.ip()
    );
}

async fn serve(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    state: Arc<State>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let udp = tokio::net::UdpSocket::from_std(udp).expect("tokio UDP");
    let tcp = tokio::net::TcpListener::from_std(tcp).expect("tokio TCP");
    let mut buf = vec![0u8; 65_535];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, peer)) = r {
                    if let Some(reply) = state.answer(&buf[..n], false) {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                }
            }
            r = tcp.accept() => {
                if let Ok((stream, _)) = r {
                    tokio::spawn(serve_tcp(stream, state.clone()));
                }
            }
        }
    }
}

/// Length-prefixed messages on one TCP connection until the client closes it.
async fn serve_tcp(mut stream: tokio::net::TcpStream, state: Arc<State>) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some(reply) = state.answer(&msg, true) else {
            continue;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
