//! Load generator for the peer benchmark (`benches/peers.sh`).
//!
//! One binary plays both ends of every measurement, so each proxy (and the direct path used as the
//! baseline) is driven by exactly the same client and origin code:
//!
//! * `sink` is the origin. A plain listener answers a tiny request protocol (the client sends a
//!   big-endian `u64` N, the sink answers N bytes, repeatedly, until EOF). A TLS listener serves
//!   `GET /bytes/N` over HTTPS with a `Content-Length` response, under a certificate issued by a
//!   throw-away CA that the sink writes to disk.
//! * `throughput`, `https-download`, `setup` and `idle` are the clients; each prints one line of
//!   `key=value` pairs on standard output for the script to parse.
//! * `gen-ca` writes a CA certificate and key (PEM), for a proxy that needs one to intercept.
//!
//! The client always speaks first (also on the plain protocol), because a diagnostic proxy may
//! wait for the client's first bytes (to look for a TLS ClientHello) before relaying anything.
//!
//! All sockets are on loopback; every loop is bounded by a count or a deadline.
//!
//! Declared in `Cargo.toml` as a `harness = false` bench, so plain `cargo bench` also runs it: with
//! no subcommand it prints its usage and exits successfully.

use clap::{Parser, Subcommand};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{self, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Read and write chunk: large enough that neither end of the load generator is the bottleneck
/// of a loopback transfer (one syscall moves 256 KiB).
const CHUNK: usize = 256 * 1024;

/// The bytes the sink sends. Zeros: content does not matter, and a static buffer costs nothing.
static ZEROS: [u8; CHUNK] = [0u8; CHUNK];

/// Largest request head (CONNECT answer, HTTP request or response head) we accept.
const MAX_HEAD: usize = 16 * 1024;

/// Largest transfer one request may ask for (1 TiB): refuses absurd lengths from a broken peer.
const MAX_REQUEST_BYTES: u64 = 1 << 40;

/// Name the TLS sink's certificate is issued for and that HTTPS clients ask for.
const TLS_NAME: &str = "localhost";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

#[derive(Parser)]
#[command(about = "Loopback load generator for regdoc's peer benchmark")]
struct Cli {
    /// Tokio worker threads (1 = a current-thread runtime, which keeps the generator on one core).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Origin server: a plain N-bytes-on-request listener and an HTTPS listener.
    Sink {
        /// Written (atomically) once both listeners are bound: `plain=PORT` and `tls=PORT` lines.
        #[arg(long)]
        ready_file: PathBuf,
        /// Where to write the PEM of the CA that issued the HTTPS listener's certificate.
        #[arg(long)]
        ca_out: PathBuf,
        /// Exit after this many seconds whatever happens (the script normally kills it sooner).
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
    },
    /// Transfer N bytes through a CONNECT tunnel (or directly) and report MiB/s.
    Throughput {
        #[command(flatten)]
        path: PathArgs,
        #[arg(long)]
        bytes: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Download N bytes over HTTPS through a proxy (possibly intercepting) and report MiB/s.
    HttpsDownload {
        #[command(flatten)]
        path: PathArgs,
        #[arg(long)]
        bytes: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// PEM file of the CA to trust: the sink's for direct or passthrough, the proxy's when it
        /// intercepts.
        #[arg(long)]
        ca: PathBuf,
    },
    /// Open tunnels as fast as possible: tunnels per second and time to first byte.
    Setup {
        #[command(flatten)]
        path: PathArgs,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Unmeasured seconds before (warms the proxy's allocator, caches and pools).
        #[arg(long, default_value_t = 0.3)]
        warmup: f64,
        /// Stop after this many tunnels (warm-up included), if sooner than --duration: a fixed
        /// amount of work, for counting the proxy's instructions per tunnel.
        #[arg(long)]
        tunnels: Option<u64>,
    },
    /// Open COUNT tunnels, exchange one byte on each, print `ready=`, then hold them open.
    Idle {
        #[command(flatten)]
        path: PathArgs,
        #[arg(long)]
        count: usize,
        /// Tunnels opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to hold the tunnels after `ready=` (the script kills it sooner).
        #[arg(long, default_value_t = 120)]
        hold: u64,
    },
    /// A minimal CONNECT relay, the yardstick of what moving the bytes costs (not a proxy to
    /// compare): `copy` uses tokio's `copy_bidirectional_with_sizes` with `--buf`, `splice` moves
    /// bytes socket → pipe → socket with splice(2), never through user space. It looks at
    /// nothing, so it carries HTTPS (the TLS stays end to end) as it carries anything else.
    Relay {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, value_enum, default_value_t = RelayMode::Copy)]
        mode: RelayMode,
        /// Copy buffer per direction, or pipe size for splice.
        #[arg(long, default_value_t = 65536)]
        buf: usize,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
    /// Write a CA certificate and key (PEM) for a proxy's TLS interception.
    GenCa {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RelayMode {
    Copy,
    Splice,
}

/// How a client reaches the target.
#[derive(clap::Args, Clone)]
struct PathArgs {
    /// `HOST:PORT` of the proxy, or `direct`.
    #[arg(long)]
    proxy: String,
    /// `HOST:PORT` to reach (what the CONNECT names).
    #[arg(long)]
    target: String,
}

impl PathArgs {
    fn route(&self) -> Result<Route> {
        let proxy =
            if self.proxy == "direct" {
                None
            } else {
                Some(self.proxy.parse::<SocketAddr>().map_err(|e| {
                    format!("--proxy {:?}: {e} (want IP:PORT or direct)", self.proxy)
                })?)
            };
        Ok(Route {
            proxy,
            target: self.target.clone(),
        })
    }
}

#[derive(Clone)]
struct Route {
    proxy: Option<SocketAddr>,
    target: String,
}

fn main() {
    // `cargo bench` runs every bench target with `--bench`; `cargo test --benches` with no
    // arguments. Neither names a subcommand: say how to use the tool and succeed.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .all(|a| a.starts_with("--bench") || a == "--test")
    {
        println!(
            "loadgen: driven by benches/peers.sh (see benches/README.md); nothing to do alone"
        );
        return;
    }
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = runtime.block_on(dispatch(cli.cmd)) {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

async fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Sink {
            ready_file,
            ca_out,
            max_seconds,
        } => sink(&ready_file, &ca_out, Duration::from_secs(max_seconds)).await,
        Cmd::Throughput { path, bytes, runs } => throughput(&path.route()?, bytes, runs).await,
        Cmd::HttpsDownload {
            path,
            bytes,
            runs,
            ca,
        } => https_download(&path.route()?, bytes, runs, &ca).await,
        Cmd::Setup {
            path,
            concurrency,
            duration,
            warmup,
            tunnels,
        } => setup(&path.route()?, concurrency, duration, warmup, tunnels).await,
        Cmd::Idle {
            path,
            count,
            concurrency,
            hold,
        } => {
            idle(
                &path.route()?,
                count,
                concurrency,
                Duration::from_secs(hold),
            )
            .await
        }
        Cmd::Relay {
            listen,
            mode,
            buf,
            max_seconds,
        } => relay(listen, mode, buf, Duration::from_secs(max_seconds)).await,
        Cmd::GenCa { cert, key } => {
            let (ca, ca_key) = make_ca("regdoc benchmark interception CA")?;
            std::fs::write(&cert, ca.pem())?;
            std::fs::write(&key, ca_key.serialize_pem())?;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sink

async fn sink(ready_file: &Path, ca_out: &Path, max: Duration) -> Result<()> {
    let (ca, ca_key) = make_ca("regdoc benchmark origin CA")?;
    let acceptor = TlsAcceptor::from(Arc::new(sink_tls_config(&ca, &ca_key)?));
    std::fs::write(ca_out, ca.pem())?;

    let plain = TcpListener::bind("127.0.0.1:0").await?;
    let tls = TcpListener::bind("127.0.0.1:0").await?;
    let text = format!(
        "plain={}\ntls={}\n",
        plain.local_addr()?.port(),
        tls.local_addr()?.port()
    );
    // Rename makes the file appear complete or not at all: the script polls for it.
    let tmp = ready_file.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, ready_file)?;

    let plain_loop = async {
        loop {
            match plain.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = serve_plain(s).await {
                            if !benign(&e) {
                                eprintln!("sink plain: {e}");
                            }
                        }
                    });
                }
                // Out of fds and the like: back off instead of spinning.
                Err(e) => {
                    eprintln!("sink accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    let tls_loop = async {
        loop {
            match tls.accept().await {
                Ok((s, _)) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_https(s, acceptor).await {
                            if !benign(&e) {
                                eprintln!("sink https: {e}");
                            }
                        }
                    });
                }
                Err(e) => {
                    eprintln!("sink accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = plain_loop => {}
        _ = tls_loop => {}
        _ = tokio::time::sleep(max) => eprintln!("sink: --max-seconds reached, exiting"),
    }
    Ok(())
}

/// Peers hanging up is how every measurement ends; only other errors are worth printing.
fn benign(e: &BoxError) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        )
    })
}

/// Plain protocol: read a big-endian u64 N, answer N bytes; repeat until the client closes.
async fn serve_plain(mut s: TcpStream) -> Result<()> {
    s.set_nodelay(true)?;
    let mut req = [0u8; 8];
    loop {
        match s.read_exact(&mut req).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let n = u64::from_be_bytes(req);
        if n > MAX_REQUEST_BYTES {
            return Err(format!("client asked for {n} bytes, more than the 1 TiB bound").into());
        }
        write_zeros(&mut s, n).await?;
        s.flush().await?;
    }
}

async fn write_zeros<W: AsyncWrite + Unpin>(w: &mut W, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let k = n.min(CHUNK as u64) as usize;
        w.write_all(&ZEROS[..k]).await?;
        n -= k as u64;
    }
    Ok(())
}

/// HTTPS: one `GET /bytes/N` per connection, answered with N bytes and `Connection: close`.
async fn serve_https(s: TcpStream, acceptor: TlsAcceptor) -> Result<()> {
    s.set_nodelay(true)?;
    let mut tls = acceptor.accept(s).await?;
    let (head, _body_start) = read_head(&mut tls).await?;
    let line = head.lines().next().unwrap_or_default();
    let n: u64 = line
        .strip_prefix("GET /bytes/")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected request line {line:?}"))?;
    if n > MAX_REQUEST_BYTES {
        return Err(format!("client asked for {n} bytes, more than the 1 TiB bound").into());
    }
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(resp.as_bytes()).await?;
    write_zeros(&mut tls, n).await?;
    tls.shutdown().await?;
    Ok(())
}

/// A CA named `cn`. The sink's CA and an interception CA get different names: a verifier picks
/// the issuer by name, and two CAs with one name would fail with a bad signature.
fn make_ca(cn: &str) -> Result<(rcgen::Certificate, rcgen::KeyPair)> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
}

fn sink_tls_config(
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> Result<rustls::ServerConfig> {
    let mut params = rcgen::CertificateParams::new(vec![TLS_NAME.to_string()])?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, TLS_NAME);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let leaf = params.signed_by(&key, ca, ca_key)?;
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key_der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| format!("leaf key: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------------
// Client side

/// Open a TCP connection to the target, through a CONNECT tunnel when a proxy is given.
async fn open(route: &Route) -> Result<TcpStream> {
    let Some(proxy) = route.proxy else {
        let s = TcpStream::connect(route.target.as_str()).await?;
        s.set_nodelay(true)?;
        return Ok(s);
    };
    let mut s = TcpStream::connect(proxy).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "CONNECT {t} HTTP/1.1\r\nHost: {t}\r\nUser-Agent: regdoc-loadgen\r\n\r\n",
        t = route.target
    );
    s.write_all(req.as_bytes()).await?;
    let (head, extra) = read_head(&mut s).await?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("malformed CONNECT answer {:?}", first_line(&head)))?;
    if !(200..300).contains(&status) {
        return Err(format!("proxy refused the CONNECT: {:?}", first_line(&head)).into());
    }
    // The client has not spoken yet, so the origin cannot have either.
    if !extra.is_empty() {
        return Err("proxy sent tunnel bytes before the client spoke".into());
    }
    Ok(s)
}

fn first_line(head: &str) -> &str {
    head.lines().next().unwrap_or_default()
}

/// Read an HTTP head up to the blank line. Returns it and any bytes read past it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the end of the HTTP head",
            )
            .into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let extra = buf.split_off(end + 4);
            let head = String::from_utf8_lossy(&buf).into_owned();
            return Ok((head, extra));
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("HTTP head longer than {MAX_HEAD} bytes").into());
        }
    }
}

/// Read exactly `n` bytes (of which `already` were read with the head), refusing more.
async fn drain<R: AsyncRead + Unpin>(r: &mut R, n: u64, already: u64) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = already;
    while got < n {
        let want = (n - got).min(CHUNK as u64) as usize;
        let k = r.read(&mut buf[..want]).await?;
        if k == 0 {
            return Err(format!("stream ended after {got} of {n} bytes").into());
        }
        got += k as u64;
    }
    Ok(())
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn join(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn throughput(route: &Route, bytes: u64, runs: usize) -> Result<()> {
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let mut s = open(route).await?;
        s.write_all(&bytes.to_be_bytes()).await?;
        drain(&mut s, bytes, 0).await?;
        rates.push(mib_per_s(bytes, t0.elapsed()));
    }
    let runs_txt = join(&rates);
    println!(
        "mib_s={:.1} runs={runs_txt} bytes={bytes} self_cpu_s={:.2}",
        median(&mut rates),
        self_cpu_seconds()
    );
    Ok(())
}

/// User + system CPU seconds this process has used: the client's own cost of reading, which
/// with the origin's cost of writing bounds what a copying proxy must spend.
fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn client_tls(ca: &Path) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let file = std::fs::File::open(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut BufReader::new(file)).collect::<io::Result<_>>()?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", ca.display()).into());
    }
    for c in certs {
        roots.add(c)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // HTTP/1.1 only: the same protocol to every proxy, and no h2 upgrade by an interceptor.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(cfg)))
}

async fn https_download(route: &Route, bytes: u64, runs: usize, ca: &Path) -> Result<()> {
    let connector = client_tls(ca)?;
    let host = route
        .target
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .ok_or("--target must be HOST:PORT")?;
    let name = ServerName::try_from(host.clone())?;
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let tcp = open(route).await?;
        let mut tls = connector.connect(name.clone(), tcp).await?;
        let req = format!(
            "GET /bytes/{bytes} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: regdoc-loadgen\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await?;
        let (head, extra) = read_head(&mut tls).await?;
        if !first_line(&head).contains(" 200") {
            return Err(format!("HTTPS answer {:?}", first_line(&head)).into());
        }
        let len: Option<u64> = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        });
        // An interceptor may re-frame the body (chunked); then read to the close instead.
        match len {
            Some(n) if n != bytes => {
                return Err(format!("Content-Length {n}, expected {bytes}").into())
            }
            Some(_) => drain(&mut tls, bytes, extra.len() as u64).await?,
            None => {
                let mut buf = vec![0u8; CHUNK];
                let mut got = extra.len() as u64;
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(k) => got += k as u64,
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                if got < bytes {
                    return Err(format!("body ended after {got} of {bytes} bytes").into());
                }
            }
        }
        rates.push(mib_per_s(bytes, t0.elapsed()));
    }
    let runs_txt = join(&rates);
    println!(
        "mib_s={:.1} runs={runs_txt} bytes={bytes}",
        median(&mut rates)
    );
    Ok(())
}

/// One tunnel: open, ask for one byte, wait for it. Returns the time to that first byte.
async fn one_tunnel(route: &Route) -> Result<(TcpStream, Duration)> {
    let t0 = Instant::now();
    let mut s = open(route).await?;
    s.write_all(&1u64.to_be_bytes()).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok((s, t0.elapsed()))
}

async fn setup(
    route: &Route,
    concurrency: usize,
    duration: f64,
    warmup: f64,
    tunnels: Option<u64>,
) -> Result<()> {
    if !(0.0..=600.0).contains(&duration) || !(0.0..=60.0).contains(&warmup) {
        return Err("--duration must be 0..600 s and --warmup 0..60 s".into());
    }
    let concurrency = concurrency.clamp(1, 4096);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(duration);
    let errors = Arc::new(AtomicU64::new(0));
    let begun = Arc::new(AtomicU64::new(0));
    let limit = tunnels.unwrap_or(u64::MAX);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let route = route.clone();
        let errors = errors.clone();
        let begun = begun.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut last_err = None;
            while Instant::now() < end && begun.fetch_add(1, Ordering::Relaxed) < limit {
                let began = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), one_tunnel(&route)).await {
                    Ok(Ok((s, d))) => {
                        drop(s);
                        if began >= measure_from && Instant::now() <= end {
                            lat.push(d.as_nanos() as u64);
                        }
                    }
                    Ok(Err(e)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        last_err = Some(e.to_string());
                        // A refusing proxy must not turn this into a busy loop.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        last_err = Some("no first byte within 10 s".into());
                    }
                }
            }
            (lat, last_err)
        }));
    }
    let mut all = Vec::new();
    let mut last_err = None;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        if e.is_some() {
            last_err = e;
        }
    }
    let errors = errors.load(Ordering::Relaxed);
    if all.is_empty() {
        if errors > 0 {
            return Err(format!(
                "no tunnel completed ({errors} errors; last: {})",
                last_err.unwrap_or_default()
            )
            .into());
        }
        // Slower than one tunnel per client in the whole window: a rate of zero, not a failure.
        println!("tunnels_per_s=0 p50_us=n/a p99_us=n/a mean_us=n/a count=0 errors=0");
        return Ok(());
    }
    // The measured window: shorter than --duration when --tunnels ended it.
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    let mean = all.iter().map(|&ns| ns as f64).sum::<f64>() / all.len() as f64 / 1000.0;
    println!(
        "tunnels_per_s={:.0} p50_us={:.1} p99_us={:.1} mean_us={mean:.1} count={} errors={errors} self_cpu_s={:.2}",
        all.len() as f64 / measured.max(1e-9),
        pct(0.50),
        pct(0.99),
        all.len(),
        self_cpu_seconds()
    );
    if let Some(e) = last_err {
        eprintln!("setup: {errors} errors, last: {e}");
    }
    Ok(())
}

async fn idle(route: &Route, count: usize, concurrency: usize, hold: Duration) -> Result<()> {
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.clamp(1, 1024)));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(30), one_tunnel(&route)).await;
            drop(permit);
            match r {
                Ok(Ok((s, _))) => Ok(s),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("tunnel not open within 30 s".to_string()),
            }
        }));
    }
    let mut held = Vec::with_capacity(count);
    let mut errors = 0usize;
    let mut last_err = String::new();
    for t in tasks {
        match t.await? {
            Ok(s) => held.push(s),
            Err(e) => {
                errors += 1;
                last_err = e;
            }
        }
    }
    println!(
        "ready={} errors={errors} open_ms={}",
        held.len(),
        t0.elapsed().as_millis()
    );
    io::stdout().flush()?;
    if errors > 0 {
        eprintln!("idle: {errors} tunnels failed, last: {last_err}");
    }
    tokio::time::sleep(hold).await;
    drop(held);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Relay (copy-loop experiments)

async fn relay(listen: SocketAddr, mode: RelayMode, buf: usize, max: Duration) -> Result<()> {
    if !listen.ip().is_loopback() {
        return Err("the relay listens on loopback only".into());
    }
    let buf = buf.clamp(4096, 16 * 1024 * 1024);
    let l = TcpListener::bind(listen).await?;
    let serve = async {
        loop {
            match l.accept().await {
                Ok((c, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = relay_conn(c, mode, buf).await {
                            if !benign(&e) {
                                eprintln!("relay: {e}");
                            }
                        }
                    });
                }
                Err(e) => {
                    eprintln!("relay accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::time::sleep(max) => {}
    }
    Ok(())
}

async fn relay_conn(mut c: TcpStream, mode: RelayMode, buf: usize) -> Result<()> {
    c.set_nodelay(true)?;
    let (head, extra) = read_head(&mut c).await?;
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
        .ok_or_else(|| format!("not a CONNECT: {:?}", first_line(&head)))?
        .to_string();
    // IP:PORT, or a name (`localhost:PORT`, what the HTTPS download names for its certificate).
    let target: SocketAddr = tokio::net::lookup_host(target.as_str())
        .await
        .map_err(|e| format!("relay target {target:?}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or("the relay connects to loopback only")?;
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    if !extra.is_empty() {
        s.write_all(&extra).await?;
    }
    match mode {
        RelayMode::Copy => {
            tokio::io::copy_bidirectional_with_sizes(&mut c, &mut s, buf, buf).await?;
        }
        RelayMode::Splice => {
            tokio::try_join!(splice_one(&c, &s, buf), splice_one(&s, &c, buf))?;
        }
    }
    Ok(())
}

/// One direction: socket → pipe → socket until EOF, then half-close the destination. The pipe
/// is regdoc's own (`regdoc::net::splice`), so this yardstick and the proxy move bytes the same
/// way and differ only in what is around it.
async fn splice_one(src: &TcpStream, dst: &TcpStream, size: usize) -> io::Result<u64> {
    use regdoc::net::splice::{Fill, Pipe};
    let mut p = Pipe::new(size)?;
    let mut total = 0u64;
    loop {
        src.readable().await?;
        loop {
            match p.fill_from(src, usize::MAX) {
                Ok(Fill::End) => {
                    p.drain_to(dst).await?;
                    socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write)?;
                    return Ok(total);
                }
                Ok(Fill::Moved(n)) => total += n as u64,
                Ok(Fill::PipeFull) => p.drain_to(dst).await?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        p.drain_to(dst).await?;
    }
}
