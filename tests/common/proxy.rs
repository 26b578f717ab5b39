//! A regdoc instance on loopback for integration tests, with its records captured.
//!
//! Records are captured by a process-wide tracing subscriber (a test binary can install only
//! one); each test filters the records by its own target or connection, and every target port
//! is unique to its test, so parallel tests do not see each other's records.

use regdoc::config::Config;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static RECORDS: OnceLock<Mutex<Vec<Value>>> = OnceLock::new();
/// Every line any event produced, records and plain logs, for secret scans.
static ALL_TEXT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

struct Capture;

#[derive(Default)]
struct Fields {
    json: Option<String>,
    all: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "json" {
            self.json = Some(value.to_string());
        }
        self.all.push_str(&format!("{}={} ", field.name(), value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.all.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        // The real log writes span fields into every line inside the span: scan them too.
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Ok(mut all) = ALL_TEXT.get_or_init(Default::default).lock() {
            all.push(format!("span {} {}", attrs.metadata().name(), f.all));
        }
    }

    fn on_record(
        &self,
        _id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: Context<'_, S>,
    ) {
        let mut f = Fields::default();
        values.record(&mut f);
        if let Ok(mut all) = ALL_TEXT.get_or_init(Default::default).lock() {
            all.push(format!("span record {}", f.all));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if let Ok(mut all) = ALL_TEXT.get_or_init(Default::default).lock() {
            all.push(f.all.clone());
        }
        if event.metadata().target() == regdoc::record::TARGET {
            if let Some(j) = f.json.and_then(|j| serde_json::from_str::<Value>(&j).ok()) {
                if let Ok(mut r) = RECORDS.get_or_init(Default::default).lock() {
                    r.push(j);
                }
            }
        }
    }
}

/// The real log, written next to the capture by regdoc's own layer (JSON lines, every level
/// regdoc logs at), so a secret scan reads exactly what an operator's log file would hold.
struct RealLog {
    handle: regdoc::logging::LogHandle,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

static REAL_LOG: OnceLock<Option<RealLog>> = OnceLock::new();

/// Install the capturing subscriber (once per test binary): the test capture and the real log
/// layer writing to a temporary file.
pub fn init_capture() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let real = tempfile::tempdir().ok().and_then(|dir| {
            let path = dir.path().join("regdoc.jsonl");
            let cfg = regdoc::config::LogConfig {
                file: Some(path.clone()),
                ..Default::default()
            };
            let (layer, handle) = regdoc::logging::build(&cfg).ok()?;
            Some((
                layer,
                RealLog {
                    handle,
                    path,
                    _dir: dir,
                },
            ))
        });
        let (layer, real) = match real {
            Some((l, r)) => (Some(l), Some(r)),
            None => (None, None),
        };
        let _ = REAL_LOG.set(real);
        let filter = regdoc::logging::filter(Some("regdoc=trace,info")).ok();
        use tracing_subscriber::Layer as _;
        let sub = tracing_subscriber::registry()
            .with(Capture)
            .with(layer.map(|l| l.with_filter(filter)));
        let _ = tracing::subscriber::set_global_default(sub);
    });
}

/// Everything the real log holds so far, after a flush (the writer holds lines back briefly).
/// Scan it only after the records exist: see `common/secrets.rs`.
pub fn log_text() -> String {
    let Some(Some(real)) = REAL_LOG.get() else {
        panic!("the real log layer could not be installed");
    };
    real.handle.flush().expect("log flush");
    std::fs::read_to_string(&real.path).expect("read log")
}

/// All captured records matching `pred`.
pub fn records(pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    RECORDS
        .get_or_init(Default::default)
        .lock()
        .map(|r| r.iter().filter(|v| pred(v)).cloned().collect())
        .unwrap_or_default()
}

/// Every captured event rendered as text.
pub fn all_text() -> String {
    ALL_TEXT
        .get_or_init(Default::default)
        .lock()
        .map(|v| v.join("\n"))
        .unwrap_or_default()
}

/// How long a test waits for something that should happen at once (a record, a reply, a read)
/// before it fails: generous, so a loaded machine does not fail a test, and finite, so a test
/// whose event never comes fails instead of hanging.
pub const BOUND: Duration = Duration::from_secs(30);

/// Wait (bounded by [`BOUND`]) until `pred` matches at least `n` records; return them all.
/// Panics when they do not come: a short list is never handed back as if it were the answer.
pub async fn wait_records(n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + BOUND;
    loop {
        let r = records(&pred);
        if r.len() >= n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "waited {BOUND:?} for {n} matching record(s), got {}: {r:#?}",
            r.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `fut`'s output, or a panic naming `what` when it takes longer than [`BOUND`]: a read or a
/// request that would hang fails the test instead.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done after {BOUND:?}"),
    }
}

/// Records of the given event kind whose `target` is `target`.
pub fn by_target(event: &'static str, target: String) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event && v["target"] == target.as_str()
}

/// A running regdoc.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Start regdoc with `config` (its `listen` is ignored: the proxy binds 127.0.0.1:0).
    pub async fn start(config: Config) -> Proxy {
        init_capture();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            regdoc::run(listener, config, shutdown)
                .await
                .expect("regdoc run");
        });
        Proxy {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Signal shutdown; returns the server task to await.
    pub fn shutdown(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("task")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A test configuration: no system DNS is ever consulted (a nameserver that is a closed
/// loopback port answers nothing), short timeouts, and the given extra allowed ports. The test
/// servers are on loopback, which the default destination policy refuses: like an operator
/// testing locally, the configuration allows it explicitly.
pub fn config(ports: &[u16]) -> Config {
    let mut c = Config::default();
    c.allowed_destinations
        .push("127.0.0.0/8".parse().expect("literal rule"));
    c.dns.nameservers = vec!["127.0.0.1:9".into()];
    c.allowed_ports.extend_from_slice(ports);
    c.timeouts.dns = Duration::from_millis(500);
    c.timeouts.connect = Duration::from_millis(800);
    c.timeouts.tls = Duration::from_millis(400);
    c.timeouts.upstream_proxy = Duration::from_millis(800);
    c.timeouts.shutdown_grace = Duration::from_secs(5);
    c
}

/// Send `CONNECT target` and read the status line and headers.
pub async fn connect(proxy: SocketAddr, target: &str, extra: &str) -> (TcpStream, u16, String) {
    let mut s = TcpStream::connect(proxy).await.expect("connect proxy");
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n").as_bytes())
        .await
        .expect("write");
    let (status, reason) = read_status(&mut s).await;
    (s, status, reason)
}

/// Read a response head byte by byte (so no tunnel byte is consumed); status and reason.
pub async fn read_status(s: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !head.ends_with(b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or("").to_string();
    let mut parts = line.splitn(3, ' ');
    let _v = parts.next();
    let status = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let reason = parts.next().unwrap_or("").to_string();
    (status, reason)
}

/// A TCP server on loopback running `f` for each connection.
pub async fn server<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind server");
    let addr = l.local_addr().expect("addr");
    let f = std::sync::Arc::new(f);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let f = f.clone();
            tokio::spawn(async move { f(s).await });
        }
    });
    addr
}

/// A loopback address that never answers a SYN: a listener whose accept queue is full drops
/// further connection attempts, which gives a real connect timeout without leaving loopback.
/// Keep the returned value alive for as long as the address must stay a black hole.
pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<socket2::Socket>,
}

pub async fn black_hole() -> BlackHole {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    sock.bind(&any.into()).expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    // Let the kernel queue the fillers' handshakes before anyone relies on the hole.
    tokio::time::sleep(Duration::from_millis(100)).await;
    BlackHole {
        addr,
        _listener: sock,
        _fillers: fillers,
    }
}

/// The whole text of the run — the real log's lines and every captured event and span field —
/// once `n` records match `pred` (bounded wait), then the log flushed. Connection records are
/// written when a connection ends: close the clients before calling this.
pub async fn text_after(n: usize, pred: impl Fn(&Value) -> bool) -> String {
    let got = wait_records(n, &pred).await;
    assert!(got.len() >= n, "expected {n} records, got {got:#?}");
    format!("{}\n{}", log_text(), all_text())
}

/// `regdoc report` of the real log so far, as text and as JSON: what an operator would read.
pub fn report_of_log() -> String {
    let log = log_text();
    let r = regdoc::cmd::report::report(std::io::BufReader::new(log.as_bytes()));
    format!(
        "{}\n{}",
        r.render_text(),
        serde_json::to_string(&r).unwrap_or_default()
    )
}
