//! End-to-end harness: a real registry (distribution) in a network namespace, the real Docker
//! daemon, skopeo and containerd's `ctr` as clients, squid as a corporate proxy, and regdoc between
//! them.
//!
//! Every piece is owned by an RAII guard, so whatever a test does (panic included) the processes
//! are stopped, the namespace and its veth are deleted and the temporary tree is removed. Nothing
//! global is changed besides the namespace: the daemon gets its own `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/docker` through a private mount namespace, and every resolver in
//! a test asks the zone server on 127.0.0.77:53, so no DNS query leaves the machine.
//!
//! Tests are serialised with a file lock: they share the namespace name, the DNS address and
//! the veth names. See `tests/e2e/NOTES.md` for the commands this reproduces by hand.

use super::{dns, servers};
use crate::common::{net, secrets};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry's login server (REST endpoint).
pub const REG_HOST: &str = "regdoce2e.azurecr.io";
/// Its data endpoint, where the registry redirects blob downloads.
pub const DATA_HOST: &str = "regdoce2e.eastus.data.azurecr.io";
/// The token server (token mode), an ACR-style `/oauth2/token`.
pub const AUTH_HOST: &str = "regdoce2eauth.azurecr.io";
/// A registry whose address refuses connections.
pub const DOWN_HOST: &str = "regdoce2edown.azurecr.io";
/// A registry behind a firewall that drops SYNs.
pub const DROP_HOST: &str = "regdoce2efw.azurecr.io";
/// A registry that accepts TCP and never answers.
pub const SILENT_HOST: &str = "regdoce2ehang.azurecr.io";
/// A registry reached through a private endpoint (RFC 1918 address) that drops SYNs.
pub const PRIVATE_HOST: &str = "regdoce2epriv.azurecr.io";
/// A registry name that does not exist (NXDOMAIN).
pub const NX_HOST: &str = "regdoce2enx.azurecr.io";
/// A name of the registry (its address, its certificate) that only the test's hosts file knows:
/// the zone server answers NXDOMAIN for it. Resolvable only through `/etc/hosts`.
pub const HOSTS_HOST: &str = "regdoce2ehosts.azurecr.io";
/// A registry behind an SNI-filtering firewall: TCP connects, the ClientHello naming it is
/// answered with a reset ([`Options::sni_filter`]).
pub const SNI_HOST: &str = "regdoce2esni.azurecr.io";
/// A registry declared private in regdoc's configuration (`private_endpoint = true`,
/// `expected_cidrs = ["10.231.0.0/24"]`) whose name resolves to a public address, where a server
/// answers like ACR's firewall: 403 `DENIED ... not allowed access`.
pub const PRIVFW_HOST: &str = "regdoce2eprivfw.azurecr.io";
/// A registry past its service tier's request limits: every request is answered 429
/// `TOOMANYREQUESTS`, as ACR answers any `/v2/` or `/oauth2/` call while it throttles.
pub const THROTTLE_HOST: &str = "regdoce2ethrottle.azurecr.io";
/// The registry's other port ([`Options::alt_port`]): `REG_HOST:5443` reaches the registry too.
pub const ALT_PORT: u16 = 5443;

pub const USER: &str = "e2euser";
pub const PASSWORD: &str = "e2e-Passw0rd";
/// Token mode: may pull, may not push.
pub const PULL_USER: &str = "e2epull";
/// The image every scenario pulls.
pub const IMAGE_REPO: &str = "e2e/busybox";
pub const IMAGE_TAG: &str = "1";

const NETNS: &str = "rde2e";
const VETH_HOST: &str = "rde2e-h";
const VETH_NS: &str = "rde2e-n";
// TEST-NET-3 (RFC 5737): public-looking addresses, like a registry without a private endpoint,
// that exist only inside the test's namespace (routed there by the veth's on-link route).
const HOST_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const REG_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const DATA_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
const AUTH_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 4);
const DOWN_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const DROP_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 6);
const SILENT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const SNI_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 8);
const PRIVFW_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const THROTTLE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The address that refuses connections (nothing listens there), for hosts-file pins.
pub const REFUSING_IP: Ipv4Addr = DOWN_IP;
/// The registry's address, for hosts-file entries.
pub const REGISTRY_IP: Ipv4Addr = REG_IP;
// A private-endpoint address (RFC 1918), also only inside the namespace, firewalled.
const PRIVATE_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
const PRIVATE_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 8);
/// The zone server's address: port 53 because resolv.conf cannot name a port.
const DNS_ADDR: &str = "127.0.0.77:53";
const LOCK_FILE: &str = "/tmp/regdoc-e2e.lock";
/// Process ids the harness started, so a later run can stop what a killed run left behind.
const PID_FILE: &str = "/tmp/regdoc-e2e.pids";
/// Prefix of every test directory; a recorded pid is only stopped if its command line names one,
/// so a reused pid is never touched.
const DIR_PREFIX: &str = "regdoc-e2e-";
/// Hosts regdoc intercepts in [`Mode::Intercept`]: the registry's REST endpoint, its token
/// server and the firewalled "private" registry. The data endpoint stays passthrough (regdoc's
/// default for data endpoints).
const INTERCEPTED_HOSTS: &[&str] = &[REG_HOST, AUTH_HOST, PRIVFW_HOST, THROTTLE_HOST];
/// File names, in the test directory, of the three CAs of a run. The registry's CA signs the
/// REST endpoint and token server; the public CA signs the data endpoint and is the clients'
/// only system root (`SSL_CERT_FILE`), as the public roots that sign the real data endpoints;
/// regdoc's CA signs what it intercepts.
const REGISTRY_CA_FILE: &str = "registry-ca.crt";
const PUBLIC_CA_FILE: &str = "public-ca.crt";
const REGDOC_CA_FILE: &str = "regdoc-ca.crt";

/// Every host a client of the test may name, each with its own trust directory
/// (`certs.d/<host>`, containerd's `hosts.toml`).
const CLIENT_HOSTS: &[&str] = &[
    REG_HOST,
    DATA_HOST,
    AUTH_HOST,
    DOWN_HOST,
    DROP_HOST,
    SILENT_HOST,
    PRIVATE_HOST,
    NX_HOST,
    HOSTS_HOST,
    SNI_HOST,
    PRIVFW_HOST,
    THROTTLE_HOST,
];
/// containerd's namespace for the test's images.
pub const CTR_NAMESPACE: &str = "regdoc-e2e";

/// Programs the harness runs. Checked before anything starts.
const PROGRAMS: &[&str] = &[
    "ip",
    "iptables",
    "unshare",
    "mount",
    "timeout",
    "tar",
    "sha256sum",
    "openssl",
    "htpasswd",
    "busybox",
    "dockerd",
    "containerd",
    "ctr",
    "runc",
    "docker",
    "docker-registry",
    "skopeo",
    "squid",
    "mitmdump",
];

fn find_program(name: &str) -> Option<PathBuf> {
    // The Debian docker.io client first: it matches the daemon's version.
    if name == "docker" && Path::new("/usr/bin/docker").exists() {
        return Some(PathBuf::from("/usr/bin/docker"));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("program {name} not found"))
}

/// Whether this machine can run the end-to-end tests. Without root or a program, a local run
/// skips with a message naming what is missing; under `CI=true` that is a failure.
pub fn ready(test: &str) -> bool {
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    let root = unsafe { libc::geteuid() } == 0;
    if missing.is_empty() && root {
        return true;
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!(
            "missing programs: {} (`bash .ci/run` installs their Debian packages)",
            missing.join(", ")
        ));
    }
    if !root {
        why.push("needs root (network namespaces, dockerd)".to_string());
    }
    let msg = format!("e2e test {test} SKIPPED: {}", why.join("; "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true requires every end-to-end test to run");
    }
    eprintln!("{msg}");
    false
}

/// An exclusive lock held for one test: tests share the namespace, veth and DNS address.
pub struct Lock(fs::File);

impl Lock {
    pub fn take() -> Lock {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .unwrap();
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {LOCK_FILE}");
        Lock(f)
    }
}

/// Run a command to completion, panicking with its output when it fails.
fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command and ignore its outcome (cleanup).
fn sh_quiet(cmd: &mut Command) {
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Poll `f` every 100 ms until it is true or `limit` passes.
pub fn wait_for(limit: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until(limit, f)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

fn tcp_ready(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A port for a child (squid, mitmproxy, regdoc) to listen on: outside the ephemeral range,
/// so no other socket is handed it between this check and the child's bind.
fn free_port() -> u16 {
    net::child_port()
}

/// A network namespace joined to the host by a veth pair; deleted on drop.
pub struct Netns;

impl Netns {
    fn create() -> Netns {
        Self::remove();
        let ip = program("ip");
        sh(Command::new(&ip).args(["netns", "add", NETNS]));
        let guard = Netns;
        sh(Command::new(&ip).args([
            "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS,
        ]));
        sh(Command::new(&ip).args(["link", "set", VETH_NS, "netns", NETNS]));
        for a in [HOST_IP, PRIVATE_HOST_IP] {
            sh(Command::new(&ip).args(["addr", "add", &format!("{a}/24"), "dev", VETH_HOST]));
        }
        sh(Command::new(&ip).args(["link", "set", VETH_HOST, "up"]));
        for a in [
            REG_IP,
            DATA_IP,
            AUTH_IP,
            DOWN_IP,
            DROP_IP,
            SILENT_IP,
            SNI_IP,
            PRIVFW_IP,
            THROTTLE_IP,
            PRIVATE_IP,
        ] {
            sh(Command::new(&ip).args([
                "netns",
                "exec",
                NETNS,
                "ip",
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                VETH_NS,
            ]));
        }
        sh(Command::new(&ip).args(["netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up"]));
        sh(Command::new(&ip).args(["netns", "exec", NETNS, "ip", "link", "set", "lo", "up"]));
        guard.drop_tcp(DROP_IP);
        guard.drop_tcp(PRIVATE_IP);
        guard
    }

    /// Make `addr` silently drop TCP, like a firewall: connects to it time out.
    fn drop_tcp(&self, addr: Ipv4Addr) {
        sh(Command::new(program("ip")).args([
            "netns",
            "exec",
            NETNS,
            "iptables",
            "-A",
            "INPUT",
            "-d",
            &addr.to_string(),
            "-p",
            "tcp",
            "-j",
            "DROP",
        ]));
    }

    /// Run `iptables ARGS` inside the namespace.
    fn iptables(&self, args: &[&str]) {
        sh(Command::new(program("ip"))
            .args(["netns", "exec", NETNS, "iptables"])
            .args(args));
    }

    /// Make `addr:from` reach the server on `addr:to` (a registry on a second port).
    fn redirect_port(&self, addr: Ipv4Addr, from: u16, to: u16) {
        self.iptables(&[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            &addr.to_string(),
            "-p",
            "tcp",
            "--dport",
            &from.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{addr}:{to}"),
        ]);
    }

    /// An SNI filter, as a firewall doing deep packet inspection: a TCP segment to `addr:443`
    /// that carries `name` (the ClientHello's server_name) is dropped and answered with a reset.
    fn reset_sni(&self, addr: Ipv4Addr, name: &str) {
        self.iptables(&[
            "-A",
            "INPUT",
            "-d",
            &addr.to_string(),
            "-p",
            "tcp",
            "--dport",
            "443",
            "-m",
            "string",
            "--algo",
            "bm",
            "--string",
            name,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]);
    }

    fn remove() {
        let ip = find_program("ip").unwrap_or_else(|| PathBuf::from("ip"));
        sh_quiet(Command::new(&ip).args(["netns", "del", NETNS]));
        // Some kernels (and gVisor) keep the host end alive after the namespace is gone.
        sh_quiet(Command::new(&ip).args(["link", "del", VETH_HOST]));
    }

    /// A listening socket bound inside the namespace, for servers run by the test itself.
    fn listen(&self, addr: SocketAddr) -> TcpListener {
        let path = format!("/var/run/netns/{NETNS}");
        std::thread::spawn(move || {
            let f = fs::File::open(&path).unwrap();
            // Only this short-lived thread changes namespace; the socket keeps it.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let l = TcpListener::bind(addr).unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Self::remove();
    }
}

/// A child process stopped on drop: SIGTERM, then SIGKILL after a grace period.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PID_FILE)
        {
            let _ = writeln!(f, "{}", child.id());
        }
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Stop processes a previous, killed test run left behind (recorded in [`PID_FILE`]), then
    /// remove its directories (unless kept on purpose with `REGDOC_E2E_KEEP`).
    fn reap_stale() {
        Self::reap_processes();
        if std::env::var_os("REGDOC_E2E_KEEP").is_some() {
            return;
        }
        let Ok(rd) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    fn reap_processes() {
        let Ok(list) = fs::read_to_string(PID_FILE) else {
            return;
        };
        for pid in list.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains(DIR_PREFIX) {
                continue;
            }
            eprintln!("e2e: stopping pid {pid} left by an earlier run");
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let gone = wait_until(Duration::from_secs(15), || {
                !Path::new(&format!("/proc/{pid}")).exists()
            });
            if !gone {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = fs::remove_file(PID_FILE);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for `addr` to accept connections, failing early (with the log) if the process died.
    fn wait_tcp(&mut self, addr: SocketAddr) {
        let ok = wait_until(Duration::from_secs(30), || {
            !matches!(self.child.try_wait(), Ok(None)) || tcp_ready(addr)
        });
        assert!(
            ok && self.alive(),
            "{} did not listen on {addr}:\n{}",
            self.name,
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        if !wait_until(Duration::from_secs(15), || {
            !matches!(self.child.try_wait(), Ok(None))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the registry authenticates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    /// Basic auth against an htpasswd file.
    Htpasswd,
    /// Bearer tokens from the ACR-style token server at [`AUTH_HOST`].
    Token,
}

/// What regdoc does with registry TLS.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Passthrough,
    /// Terminates TLS for the registry and token hosts with its own CA, which the clients trust.
    Intercept,
}

/// regdoc's own upstream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Upstream {
    Direct,
    /// squid configured with `http_access deny CONNECT`: every CONNECT gets 403.
    SquidDenyConnect,
    /// squid that tunnels.
    Squid,
    /// A listener that closes every connection before answering.
    Closer,
    /// mitmproxy (`mitmdump`, regular mode) on loopback: a TLS-inspecting corporate proxy. It
    /// tunnels nothing: every CONNECT's TLS is terminated with a certificate from its own CA
    /// (issuer CN `mitmproxy`), which no client of the test trusts. `tls12`: it speaks at most
    /// TLS 1.2 to its clients (`tls_version_client_max=TLS1_2`), so its certificate crosses
    /// regdoc's tunnel in the clear.
    Mitmproxy {
        tls12: bool,
    },
}

/// What the Docker daemon uses as its proxy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DaemonProxy {
    /// `HTTPS_PROXY=http://<regdoc>`.
    Regdoc,
    /// `HTTPS_PROXY=https://<regdoc>`: the scheme mistake.
    RegdocHttpsScheme,
    /// squid directly, without regdoc: checks the harness itself.
    SquidOnly,
    /// No proxy at all: the baseline of the pull timing (`docker_pull_timing`).
    Direct,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub auth: Auth,
    pub mode: Mode,
    pub upstream: Upstream,
    pub daemon_proxy: DaemonProxy,
    /// Start a Docker daemon (skopeo scenarios do without).
    pub docker: bool,
    /// Firewall the data endpoint (DROP) while the REST endpoint works.
    pub data_endpoint_blocked: bool,
    /// The clients trust regdoc's CA for the hosts it intercepts. When false each host gets the
    /// CA of its real server (the registry's for the registry), as a client nobody configured
    /// for interception.
    pub client_trusts_regdoc: bool,
    /// regdoc runs as deployed: no `[dns]` section (the system resolver), in its own mount
    /// namespace where the test's `hosts` and `resolv.conf` (`nameserver 127.0.0.77`) are
    /// bind-mounted over `/etc/hosts` and `/etc/resolv.conf`, the same files the daemon sees.
    pub regdoc_as_deployed: bool,
    /// Extra lines of the test's hosts file (dockerd's, mitmproxy's, and regdoc's when
    /// [`Options::regdoc_as_deployed`]): `(name, address)`.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// The registry answers on [`ALT_PORT`] too (a DNAT inside the namespace), regdoc's
    /// `allowed_ports` include it and `certs.d/<host>:5443` mirrors `certs.d/<host>`.
    pub alt_port: bool,
    /// Token mode: the token server signs with a key the registry does not trust (not in its
    /// `rootcertbundle`), so it issues tokens the registry answers 401 to.
    pub token_rejected: bool,
    /// Install the SNI filter that resets a ClientHello naming [`SNI_HOST`].
    pub sni_filter: bool,
    /// Entries of regdoc's `[timeouts]` (`("connect", "3s")`). Empty by default: the tests run
    /// regdoc with its own deadlines, as deployed, unless a scenario is about one of them.
    pub timeouts: Vec<(&'static str, &'static str)>,
    /// Bytes of incompressible data added to the image's one layer (0: the layer holds only
    /// busybox). The pull timing uses a large layer, as the real workload has.
    pub layer_bytes: u64,
    /// Start Squid beside regdoc, each on its own, so that [`Env::restart_dockerd`] can switch
    /// the daemon between no proxy, Squid and regdoc within one environment.
    pub every_path: bool,
    /// More variables of the Docker daemon's environment, after `HTTPS_PROXY`/`HTTP_PROXY`
    /// (`("NO_PROXY", ".azurecr.io")`: a setting `regdoc doctor docker` must find wrong).
    pub daemon_env: Vec<(&'static str, String)>,
    /// Start a private containerd (own root, state and socket under the test directory, its
    /// CRI plugin disabled) for [`Env::ctr`]. `ctr images pull` resolves and fetches in the
    /// `ctr` process itself, so the proxy settings and the `hosts.toml` trust apply there;
    /// containerd stores the content and unpacks it.
    pub containerd: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Auth::Htpasswd,
            mode: Mode::Passthrough,
            upstream: Upstream::Direct,
            daemon_proxy: DaemonProxy::Regdoc,
            docker: true,
            data_endpoint_blocked: false,
            client_trusts_regdoc: true,
            regdoc_as_deployed: false,
            hosts: Vec::new(),
            alt_port: false,
            token_rejected: false,
            sni_filter: false,
            timeouts: Vec::new(),
            layer_bytes: 0,
            every_path: false,
            daemon_env: Vec::new(),
            containerd: false,
        }
    }
}

/// What a client printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The whole environment of one test. Dropping it stops everything, in reverse order.
pub struct Env {
    pub opts: Options,
    pub dir: PathBuf,
    pub regdoc_port: Option<u16>,
    squid_port: Option<u16>,
    regdoc_log: PathBuf,
    dockerd: Option<Proc>,
    dockerd_exec_root: PathBuf,
    containerd: Option<Proc>,
    regdoc: Option<Proc>,
    squid: Option<Proc>,
    mitmproxy: Option<Proc>,
    mitmproxy_port: Option<u16>,
    registry: Option<Proc>,
    rt: Option<tokio::runtime::Runtime>,
    dns: Option<dns::ZoneDns>,
    netns: Option<Netns>,
    tmp: Option<tempfile::TempDir>,
    /// Client addresses of the harness's own marker requests (see [`Env::settle`]), whose
    /// records are not the scenario's.
    markers: std::sync::Mutex<Vec<String>>,
    /// Every secret the scenario used (passwords, Basic credentials, issued tokens): regdoc's
    /// whole log, its stderr and `regdoc report` of the log are scanned for them when the
    /// environment ends, after regdoc has stopped and written its last line.
    pub secrets: std::sync::Arc<secrets::Secrets>,
    _lock: Lock,
}

/// The CAs of one run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ca {
    /// Signs the registry's REST endpoint and the token server.
    Registry,
    /// Signs the data endpoint; the clients' only system root.
    Public,
    /// regdoc's interception CA.
    Regdoc,
}

impl Ca {
    fn file(self) -> &'static str {
        match self {
            Ca::Registry => REGISTRY_CA_FILE,
            Ca::Public => PUBLIC_CA_FILE,
            Ca::Regdoc => REGDOC_CA_FILE,
        }
    }
}

/// Certificates of one run.
struct Pki {
    /// CA of the registry's REST endpoint and token server. Not a system root of the clients:
    /// they trust it only where `certs.d/<host>/ca.crt` names it.
    registry_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// CA of the data endpoint, the clients' system roots (`SSL_CERT_FILE`).
    public_ca: PathBuf,
    data_cert: PathBuf,
    data_key: PathBuf,
    /// regdoc's interception CA.
    regdoc_ca: PathBuf,
    regdoc_ca_key: PathBuf,
    /// RSA key and self-signed certificate that sign tokens.
    token_key: PathBuf,
    token_cert: PathBuf,
    token_cert_der: Vec<u8>,
}

fn make_ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let k = rcgen::KeyPair::generate().unwrap();
    let c = p.self_signed(&k).unwrap();
    (c, k)
}

/// A server certificate for `names` signed by `ca`.
fn make_leaf(
    names: &[&str],
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0].to_string());
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let k = rcgen::KeyPair::generate().unwrap();
    let c = p.signed_by(&k, ca, ca_key).unwrap();
    (c, k)
}

fn make_pki(dir: &Path) -> Pki {
    let (ca, ca_key) = make_ca("regdoc e2e registry CA");
    let (leaf, leaf_key) = make_leaf(
        &[
            REG_HOST,
            AUTH_HOST,
            HOSTS_HOST,
            SNI_HOST,
            PRIVFW_HOST,
            THROTTLE_HOST,
            "localhost",
        ],
        &ca,
        &ca_key,
    );
    let (pca, pca_key) = make_ca("regdoc e2e public CA");
    let (data, data_key) = make_leaf(&[DATA_HOST], &pca, &pca_key);
    let (rca, rca_key) = make_ca("regdoc e2e interception CA");

    let pki = Pki {
        registry_ca: dir.join(REGISTRY_CA_FILE),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        public_ca: dir.join(PUBLIC_CA_FILE),
        data_cert: dir.join("data.crt"),
        data_key: dir.join("data.key"),
        regdoc_ca: dir.join(REGDOC_CA_FILE),
        regdoc_ca_key: dir.join("regdoc-ca.key"),
        token_key: dir.join("token.key"),
        token_cert: dir.join("token.crt"),
        token_cert_der: Vec::new(),
    };
    fs::write(&pki.registry_ca, ca.pem()).unwrap();
    fs::write(&pki.server_cert, leaf.pem()).unwrap();
    fs::write(&pki.server_key, leaf_key.serialize_pem()).unwrap();
    fs::write(&pki.public_ca, pca.pem()).unwrap();
    fs::write(&pki.data_cert, data.pem()).unwrap();
    fs::write(&pki.data_key, data_key.serialize_pem()).unwrap();
    fs::write(&pki.regdoc_ca, rca.pem()).unwrap();
    fs::write(&pki.regdoc_ca_key, rca_key.serialize_pem()).unwrap();
    // A CA key is private: regdoc may refuse one that others can read.
    fs::set_permissions(&pki.regdoc_ca_key, fs::Permissions::from_mode(0o600)).unwrap();
    token_signer(dir, "token", "regdoc e2e token signer");
    Pki {
        token_cert_der: fs::read(dir.join("token.der")).unwrap(),
        ..pki
    }
}

/// An RSA key and its self-signed certificate that sign tokens (RS256 like ACR: an RSA key,
/// which rcgen's ring backend cannot generate): `<stem>.key`, `<stem>.crt` and `<stem>.der`.
fn token_signer(dir: &Path, stem: &str, cn: &str) {
    sh(Command::new(program("openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(dir.join(format!("{stem}.key")))
        .arg("-out")
        .arg(dir.join(format!("{stem}.crt"))));
    sh(Command::new(program("openssl"))
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join(format!("{stem}.crt")))
        .args(["-out"])
        .arg(dir.join(format!("{stem}.der"))));
}

/// Build a one-layer image (static busybox) as a `docker-archive` tarball.
fn make_image(dir: &Path, layer_bytes: u64) -> PathBuf {
    let img = dir.join("image");
    let bin = img.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(program("busybox"), bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    if layer_bytes > 0 {
        // Random bytes: gzip cannot shrink them, so the registry serves about this many.
        let mut src = fs::File::open("/dev/urandom").unwrap();
        let mut dst = fs::File::create(bin.join("payload")).unwrap();
        let copied = std::io::copy(&mut std::io::Read::take(&mut src, layer_bytes), &mut dst);
        assert_eq!(copied.unwrap(), layer_bytes);
    }
    sh(Command::new(program("tar"))
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-C",
        ])
        .arg(img.join("rootfs"))
        .arg("-cf")
        .arg(img.join("layer.tar"))
        .arg("bin"));
    let sum = sh(Command::new(program("sha256sum")).arg(img.join("layer.tar")));
    let digest = sum.split_whitespace().next().unwrap().to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    fs::write(img.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [format!("{IMAGE_REPO}:{IMAGE_TAG}")],
        "Layers": ["layer.tar"],
    }]);
    fs::write(img.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = dir.join("image.tar");
    sh(Command::new(program("tar"))
        .arg("-C")
        .arg(&img)
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", "config.json", "layer.tar"]));
    archive
}

fn zone() -> BTreeMap<String, Ipv4Addr> {
    [
        (REG_HOST, REG_IP),
        (DATA_HOST, DATA_IP),
        (AUTH_HOST, AUTH_IP),
        (DOWN_HOST, DOWN_IP),
        (DROP_HOST, DROP_IP),
        (SILENT_HOST, SILENT_IP),
        (SNI_HOST, SNI_IP),
        (PRIVFW_HOST, PRIVFW_IP),
        (THROTTLE_HOST, THROTTLE_IP),
        (PRIVATE_HOST, PRIVATE_IP),
    ]
    .into_iter()
    .map(|(h, a)| (h.to_string(), a))
    .collect()
}

/// Whether the zone server knows `name` (everything else is NXDOMAIN).
pub fn zone_knows(name: &str) -> bool {
    zone().contains_key(name)
}

/// Connection records regdoc wrote for `host` (`target` starting with it).
pub fn connection_records(env: &Env, host: &str) -> Vec<serde_json::Value> {
    env.records()
        .into_iter()
        .filter(|r| {
            r.get("event").and_then(|v| v.as_str()) == Some("connection")
                && r.get("target")
                    .and_then(|v| v.as_str())
                    .is_some_and(|t| t.starts_with(&format!("{host}:")))
        })
        .collect()
}

/// [`connection_records`], waiting up to 10 s for the first one (they are written when the
/// client's connection ends).
pub fn wait_connection_records(env: &Env, host: &str) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(10), || {
        !connection_records(env, host).is_empty()
    });
    connection_records(env, host)
}

fn registry_config(dir: &Path, pki: &Pki, auth: Option<Auth>, addr: &str) -> PathBuf {
    let storage = dir.join("storage");
    let auth_section = match auth {
        None => String::new(),
        Some(Auth::Htpasswd) => format!(
            "auth:\n  htpasswd:\n    realm: {REG_HOST}\n    path: {}\n",
            dir.join("htpasswd").display()
        ),
        Some(Auth::Token) => format!(
            "auth:\n  token:\n    realm: https://{AUTH_HOST}/oauth2/token\n    service: {REG_HOST}\n    issuer: regdoc-e2e-token\n    rootcertbundle: {}\n",
            pki.token_cert.display()
        ),
    };
    let text = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  redirect:\n    disable: {disable}\nmiddleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://{DATA_HOST}\nhttp:\n  addr: {addr}\n  secret: regdoc-e2e-secret\n  tls:\n    certificate: {cert}\n    key: {key}\n{auth_section}",
        storage = storage.display(),
        disable = auth.is_none(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
    );
    let name = if auth.is_none() { "seed" } else { "registry" };
    let path = dir.join(format!("{name}.yml"));
    fs::write(&path, text).unwrap();
    path
}

impl Env {
    /// Start everything `opts` asks for. Panics (after cleaning up) when a piece cannot start.
    pub fn start(opts: Options) -> Env {
        let lock = Lock::take();
        Proc::reap_stale();
        let tmp = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        // squid drops to the `proxy` user, which must reach its files under this tree.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let mut env = Env {
            opts: opts.clone(),
            dir: dir.clone(),
            regdoc_port: None,
            squid_port: None,
            regdoc_log: dir.join("regdoc.jsonl"),
            dockerd: None,
            dockerd_exec_root: dir.join("docker-exec"),
            containerd: None,
            regdoc: None,
            squid: None,
            mitmproxy: None,
            mitmproxy_port: None,
            registry: None,
            rt: None,
            dns: None,
            netns: None,
            tmp: Some(tmp),
            markers: std::sync::Mutex::new(Vec::new()),
            secrets: std::sync::Arc::new(secrets::Secrets::new()),
            _lock: lock,
        };
        env.rt = Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        );
        env.netns = Some(Netns::create());
        env.dns = Some(
            dns::ZoneDns::start(DNS_ADDR.parse().unwrap(), zone())
                .unwrap_or_else(|e| panic!("cannot bind the test DNS server on {DNS_ADDR}: {e}")),
        );
        let pki = make_pki(&dir);
        if opts.alt_port {
            env.netns().redirect_port(REG_IP, ALT_PORT, 443);
        }
        if opts.sni_filter {
            env.netns().reset_sni(SNI_IP, SNI_HOST);
        }
        env.start_registry(&pki);
        env.start_side_servers(&pki);
        env.write_resolver_files();
        match opts.upstream {
            Upstream::Squid => env.start_squid(false),
            Upstream::SquidDenyConnect => env.start_squid(true),
            Upstream::Mitmproxy { tls12 } => env.start_mitmproxy(tls12),
            _ => {}
        }
        let squid_for_daemon = opts.daemon_proxy == DaemonProxy::SquidOnly || opts.every_path;
        if squid_for_daemon && env.squid.is_none() {
            env.start_squid(false);
        }
        if opts.daemon_proxy != DaemonProxy::SquidOnly {
            env.start_regdoc(&pki);
        }
        env.write_client_trust();
        if opts.docker {
            env.start_dockerd();
        }
        if opts.containerd {
            env.write_containerd_hosts();
            env.start_containerd();
        }
        env
    }

    fn netns(&self) -> &Netns {
        self.netns.as_ref().unwrap()
    }

    fn start_registry(&mut self, pki: &Pki) {
        let dir = self.dir.clone();
        let reg = program("docker-registry");
        let ip = program("ip");
        // Seed the storage through a registry without auth, on loopback inside the namespace.
        let seed_cfg = registry_config(&dir, pki, None, "127.0.0.1:5000");
        let mut seed = Proc::spawn(
            "seed registry",
            Command::new(&ip)
                .args(["netns", "exec", NETNS])
                .arg(&reg)
                .arg("serve")
                .arg(&seed_cfg),
            dir.join("seed-registry.log"),
        );
        let archive = make_image(&dir, self.opts.layer_bytes);
        let copied = wait_until(Duration::from_secs(30), || {
            Command::new(&ip)
                .args(["netns", "exec", NETNS])
                .arg(program("timeout"))
                .args(["-k", "5", "60"])
                .arg(program("skopeo"))
                .args([
                    "--insecure-policy",
                    "--command-timeout",
                    "50s",
                    "copy",
                    "--dest-tls-verify=false",
                ])
                .arg(format!("docker-archive:{}", archive.display()))
                .arg(format!("docker://localhost:5000/{IMAGE_REPO}:{IMAGE_TAG}"))
                .env("HOME", &dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        assert!(
            copied,
            "could not seed the registry:\n{}",
            fs::read_to_string(&seed.log).unwrap_or_default()
        );
        seed.stop();

        sh(Command::new(program("htpasswd"))
            .args(["-Bbc"])
            .arg(dir.join("htpasswd"))
            .args([USER, PASSWORD]));
        let cfg = registry_config(&dir, pki, Some(self.opts.auth), &format!("{REG_IP}:443"));
        let mut p = Proc::spawn(
            "registry",
            Command::new(&ip)
                .args(["netns", "exec", NETNS])
                .arg(&reg)
                .arg("serve")
                .arg(&cfg),
            dir.join("registry.log"),
        );
        p.wait_tcp(SocketAddr::from((REG_IP, 443)));
        self.registry = Some(p);
    }

    fn start_side_servers(&mut self, pki: &Pki) {
        let tls = servers::acceptor(&pki.server_cert, &pki.server_key);
        let rt = self.rt.as_ref().unwrap();
        let ns = self.netns.as_ref().unwrap();
        if self.opts.data_endpoint_blocked {
            ns.drop_tcp(DATA_IP);
        }
        servers::spawn_data_endpoint(
            rt,
            ns.listen(SocketAddr::from((DATA_IP, 443))),
            servers::acceptor(&pki.data_cert, &pki.data_key),
            self.dir.join("storage"),
        );
        servers::spawn_silent(rt, ns.listen(SocketAddr::from((SILENT_IP, 443))));
        // Behind the SNI filter, a server that would answer: if the filter let the ClientHello
        // through, the client would get a registry's 200 and print something else than a reset.
        servers::spawn_fixed(
            rt,
            ns.listen(SocketAddr::from((SNI_IP, 443))),
            tls.clone(),
            "200 OK",
            "{}",
        );
        servers::spawn_fixed(
            rt,
            ns.listen(SocketAddr::from((PRIVFW_IP, 443))),
            tls.clone(),
            "403 Forbidden",
            servers::ACR_FIREWALL_DENIED,
        );
        servers::spawn_fixed(
            rt,
            ns.listen(SocketAddr::from((THROTTLE_IP, 443))),
            tls.clone(),
            "429 Too Many Requests",
            servers::ACR_TOO_MANY_REQUESTS,
        );
        if self.opts.auth == Auth::Token {
            // The registry trusts `token.crt` only; a rejected token is signed by another key.
            let (key_pem, cert_der) = if self.opts.token_rejected {
                token_signer(
                    &self.dir,
                    "rogue-token",
                    "regdoc e2e untrusted token signer",
                );
                (
                    self.dir.join("rogue-token.key"),
                    fs::read(self.dir.join("rogue-token.der")).unwrap(),
                )
            } else {
                (pki.token_key.clone(), pki.token_cert_der.clone())
            };
            let ts = servers::TokenServer {
                issued: self.secrets.clone(),
                issuer: "regdoc-e2e-token".into(),
                key_pem,
                cert_der,
                users: vec![
                    servers::TokenUser {
                        name: USER.into(),
                        password: PASSWORD.into(),
                        actions: vec!["pull".into(), "push".into()],
                    },
                    servers::TokenUser {
                        name: PULL_USER.into(),
                        password: PASSWORD.into(),
                        actions: vec!["pull".into()],
                    },
                ],
            };
            ts.spawn(rt, ns.listen(SocketAddr::from((AUTH_IP, 443))), tls);
        }
    }

    fn start_squid(&mut self, deny_connect: bool) {
        let sq = self.dir.join("squid");
        fs::create_dir_all(&sq).unwrap();
        sh(Command::new("chown").arg("proxy").arg(&sq));
        let hosts: String = zone()
            .iter()
            .map(|(h, a)| format!("{a} {h}\n"))
            .collect::<String>()
            + "127.0.0.1 localhost\n";
        fs::write(sq.join("hosts"), hosts).unwrap();
        let port = free_port();
        let deny = if deny_connect {
            "http_access deny CONNECT\n"
        } else {
            ""
        };
        let conf = format!(
            "http_port 127.0.0.1:{port}\nacl CONNECT method CONNECT\n{deny}http_access allow localhost\nhttp_access deny all\n\
             pid_filename {d}/squid.pid\naccess_log stdio:{d}/access.log\ncache_log {d}/cache.log\ncache_store_log none\n\
             coredump_dir {d}\nhosts_file {d}/hosts\ndns_nameservers 127.0.0.77\npinger_enable off\nshutdown_lifetime 1 seconds\ncache deny all\n",
            d = sq.display()
        );
        fs::write(sq.join("squid.conf"), conf).unwrap();
        let mut p = Proc::spawn(
            "squid",
            Command::new(program("squid"))
                .arg("-N")
                .arg("-f")
                .arg(sq.join("squid.conf")),
            sq.join("stdout.log"),
        );
        p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        self.squid_port = Some(port);
        self.squid = Some(p);
    }

    /// mitmproxy as regdoc's upstream: `mitmdump` in regular (forward proxy) mode on loopback,
    /// its CA generated in its own confdir under the test directory, verifying the registry
    /// against the registry CA. It resolves through the test's hosts file and zone server: like
    /// dockerd it runs in a private mount namespace with them bind-mounted.
    fn start_mitmproxy(&mut self, tls12: bool) {
        let conf = self.dir.join("mitmproxy");
        fs::create_dir_all(&conf).unwrap();
        let port = free_port();
        let mut args = vec![
            "--listen-host".to_string(),
            "127.0.0.1".to_string(),
            "--listen-port".to_string(),
            port.to_string(),
            "--set".to_string(),
            format!("confdir={}", conf.display()),
            "--set".to_string(),
            format!(
                "ssl_verify_upstream_trusted_ca={}",
                self.dir.join(REGISTRY_CA_FILE).display()
            ),
            // Serve nothing of its own (the onboarding app answers a magic host name).
            "--set".to_string(),
            "onboarding=false".to_string(),
        ];
        if tls12 {
            args.push("--set".to_string());
            args.push("tls_version_client_max=TLS1_2".to_string());
        }
        let script = self.dir.join("mitmdump.sh");
        fs::write(
            &script,
            format!(
                "set -e\nmount --make-rprivate /\n{}exec {} {}\n",
                self.resolver_mounts(),
                program("mitmdump").display(),
                args.join(" ")
            ),
        )
        .unwrap();
        let mut p = Proc::spawn(
            "mitmdump",
            Command::new(program("unshare"))
                .args(["-m", "--propagation", "private", "sh"])
                .arg(&script)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("HOME", &conf)
                // Its log lines reach the file as they happen, not when it exits.
                .env("PYTHONUNBUFFERED", "1"),
            self.dir.join("mitmdump.log"),
        );
        p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        self.mitmproxy_port = Some(port);
        self.mitmproxy = Some(p);
    }

    /// How many segments the SNI filter answered with a reset so far (its rule's counter): proof
    /// that the reset the client met came from the filter.
    pub fn sni_filter_resets(&self) -> u64 {
        let out = sh(Command::new(program("ip")).args([
            "netns", "exec", NETNS, "iptables", "-L", "INPUT", "-v", "-x", "-n",
        ]));
        out.lines()
            .filter(|l| l.contains("STRING match") && l.contains(SNI_HOST))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// What mitmdump logged.
    pub fn mitmproxy_log(&self) -> String {
        fs::read_to_string(self.dir.join("mitmdump.log")).unwrap_or_default()
    }

    /// mitmproxy's CA certificate (PEM), as it generated it in its confdir.
    pub fn mitmproxy_ca(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("mitmproxy/mitmproxy-ca-cert.pem")).ok()
    }

    /// mitmproxy's `host:port` when the test runs one.
    pub fn mitmproxy_addr(&self) -> Option<String> {
        self.mitmproxy_port.map(|p| format!("127.0.0.1:{p}"))
    }

    fn start_regdoc(&mut self, pki: &Pki) {
        let port = free_port();
        let upstream = match self.opts.upstream {
            Upstream::Direct => None,
            Upstream::Squid | Upstream::SquidDenyConnect => {
                Some(format!("http://127.0.0.1:{}", self.squid_port.unwrap()))
            }
            Upstream::Mitmproxy { .. } => {
                Some(format!("http://127.0.0.1:{}", self.mitmproxy_port.unwrap()))
            }
            Upstream::Closer => {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.set_nonblocking(true).unwrap();
                let a = l.local_addr().unwrap();
                servers::spawn_closer(self.rt.as_ref().unwrap(), l);
                Some(format!("http://{a}"))
            }
        };
        let mut text = format!("listen = \"127.0.0.1:{port}\"\n");
        if self.opts.alt_port {
            text.push_str(&format!("allowed_ports = [443, 80, {ALT_PORT}]\n"));
        }
        if !self.opts.timeouts.is_empty() {
            text.push_str("\n[timeouts]\n");
            for (k, v) in &self.opts.timeouts {
                text.push_str(&format!("{k} = \"{v}\"\n"));
            }
        }
        // As deployed, regdoc reads the system's resolver configuration (the test's files
        // bind-mounted over /etc/hosts and /etc/resolv.conf); otherwise it asks the zone server.
        if !self.opts.regdoc_as_deployed {
            text.push_str(&format!("\n[dns]\nnameservers = [\"{DNS_ADDR}\"]\n"));
        }
        text.push_str(&format!(
            "\n[log]\nformat = \"json\"\nfile = \"{log}\"\nconnections = true\n\n\
             [[registry]]\nhost = \"{REG_HOST}\"\nregions = [\"eastus\"]\n\n\
             [[registry]]\nhost = \"{PRIVFW_HOST}\"\nprivate_endpoint = true\nexpected_cidrs = [\"10.231.0.0/24\"]\n",
            log = self.regdoc_log.display()
        ));
        if self.opts.containerd && !self.opts.docker {
            // containerd is the only client: its words, as a Kubernetes node is configured.
            text.push_str("\n[diagnosis]\nclient = \"containerd\"\n");
        }
        if let Some(u) = upstream {
            text.push_str(&format!("\n[upstream]\nproxy = \"{u}\"\n"));
        }
        if self.opts.mode == Mode::Intercept {
            text.push_str(&format!(
                "\n[intercept]\nca_cert = \"{}\"\nca_key = \"{}\"\nhosts = [{}]\nextra_roots = [\"{}\"]\n",
                pki.regdoc_ca.display(),
                pki.regdoc_ca_key.display(),
                INTERCEPTED_HOSTS
                    .iter()
                    .map(|h| format!("\"{h}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                pki.registry_ca.display()
            ));
        }
        let cfg = self.dir.join("regdoc.toml");
        fs::write(&cfg, &text).unwrap();
        // Refuse a configuration regdoc itself would refuse, with its own message.
        if let Err(e) = regdoc::config::Config::parse(&text, &cfg) {
            panic!("the harness wrote a configuration regdoc refuses: {e}\n{text}");
        }
        let mut cmd = if self.opts.regdoc_as_deployed {
            // Like dockerd: a private mount namespace gives it the test's hosts and resolver.
            let script = self.dir.join("regdoc.sh");
            fs::write(
                &script,
                format!(
                    "set -e\nmount --make-rprivate /\n{}exec {} run --config {}\n",
                    self.resolver_mounts(),
                    env!("CARGO_BIN_EXE_regdoc"),
                    cfg.display()
                ),
            )
            .unwrap();
            let mut c = Command::new(program("unshare"));
            c.args(["-m", "--propagation", "private", "sh"]).arg(script);
            c
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_regdoc"));
            c.arg("run").arg("--config").arg(&cfg);
            c
        };
        let mut p = Proc::spawn(
            "regdoc",
            cmd.env("RUST_LOG", "info"),
            self.dir.join("regdoc.stderr"),
        );
        p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        self.regdoc_port = Some(port);
        self.regdoc = Some(p);
    }

    /// Whether regdoc terminates TLS for `host` in this test (its `[intercept] hosts`).
    pub fn intercepts(&self, host: &str) -> bool {
        self.opts.mode == Mode::Intercept
            && self.opts.daemon_proxy != DaemonProxy::SquidOnly
            && INTERCEPTED_HOSTS.contains(&host)
    }

    /// The one CA a client trusts for `host` (`certs.d/<host>/ca.crt`): regdoc's for a host
    /// regdoc intercepts (unless the test wants the client not to trust it), otherwise the CA
    /// that signs what the host really presents. Never both, so a pull through interception
    /// proves the client took regdoc's certificate, and a passthrough pull proves regdoc left TLS
    /// alone.
    fn ca_for(&self, host: &str) -> Ca {
        if self.intercepts(host) && self.opts.client_trusts_regdoc {
            Ca::Regdoc
        } else if host == DATA_HOST {
            Ca::Public
        } else {
            Ca::Registry
        }
    }

    /// Trust for the clients. `/etc/docker/certs.d/<host>/ca.crt` (also skopeo's `--cert-dir`
    /// for that host) holds exactly the CA of [`Env::ca_for`]; the system roots
    /// (`SSL_CERT_FILE`) hold only the public CA.
    ///
    /// Docker and containers/image build one TLS configuration per registry, the system roots
    /// plus that registry's `certs.d`, and use it for every request of the operation, the 307 to
    /// the data endpoint included: with regdoc's CA alone in `certs.d/<registry>` and the data
    /// endpoint's CA in `certs.d/<data host>`, dockerd 20.10 refused the image configuration
    /// (`x509: certificate signed by unknown authority`). The data endpoint therefore chains to
    /// the public CA, like the real ones, and the registry's own CA stays out of the system
    /// roots: through interception the registry host is trusted through regdoc's CA alone, and
    /// the real registry certificate would be refused.
    fn write_client_trust(&self) {
        fs::copy(self.dir.join(Ca::Public.file()), self.system_roots()).unwrap();
        let etc = self.dir.join("etc-docker");
        for h in CLIENT_HOSTS {
            // `host:5443` is another registry to dockerd, with its own `certs.d` directory.
            for dir_name in [h.to_string(), format!("{h}:{ALT_PORT}")] {
                let d = etc.join("certs.d").join(dir_name);
                fs::create_dir_all(&d).unwrap();
                fs::copy(self.dir.join(self.ca_for(h).file()), d.join("ca.crt")).unwrap();
            }
        }
    }

    /// The resolver files every process of the test that resolves through the system sees
    /// (bind-mounted over `/etc/hosts` and `/etc/resolv.conf` in its mount namespace): `hosts`
    /// (`localhost` and [`Options::hosts`]) and `resolv.conf` (the zone server only).
    fn write_resolver_files(&self) {
        let mut hosts = "127.0.0.1 localhost\n".to_string();
        for (name, addr) in &self.opts.hosts {
            hosts.push_str(&format!("{addr} {name}\n"));
        }
        fs::write(self.dir.join("hosts"), hosts).unwrap();
        fs::write(
            self.dir.join("resolv.conf"),
            "nameserver 127.0.0.77\noptions timeout:2 attempts:1\n",
        )
        .unwrap();
    }

    /// Shell lines that bind-mount the test's resolver files (inside a private mount namespace).
    fn resolver_mounts(&self) -> String {
        format!(
            "mount --bind {d}/hosts /etc/hosts\nmount --bind {d}/resolv.conf /etc/resolv.conf\n",
            d = self.dir.display()
        )
    }

    /// The test's hosts file, as the processes that read `/etc/hosts` see it.
    pub fn hosts_file(&self) -> String {
        fs::read_to_string(self.dir.join("hosts")).unwrap_or_default()
    }

    /// Which CA the clients trust for `host`, read back from `certs.d/<host>/ca.crt`, or `None`
    /// when that file is not exactly one of the run's CAs.
    pub fn client_trust(&self, host: &str) -> Option<Ca> {
        let f = self
            .dir
            .join("etc-docker/certs.d")
            .join(host)
            .join("ca.crt");
        let have = fs::read(f).ok()?;
        [Ca::Registry, Ca::Public, Ca::Regdoc]
            .into_iter()
            .find(|ca| fs::read(self.dir.join(ca.file())).ok().as_ref() == Some(&have))
    }

    /// The clients' system roots (`SSL_CERT_FILE`): the public CA only.
    fn system_roots(&self) -> PathBuf {
        self.dir.join("system-roots.pem")
    }

    /// squid's `host:port` when the test runs one: how regdoc's records name it as upstream.
    pub fn squid_addr(&self) -> Option<String> {
        self.squid_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// squid's access log (one line per request or tunnel it carried; written when it ends).
    pub fn squid_access_log(&self) -> String {
        fs::read_to_string(self.dir.join("squid/access.log")).unwrap_or_default()
    }

    /// The proxy URL clients are given.
    pub fn proxy_url(&self) -> String {
        match self.opts.daemon_proxy {
            DaemonProxy::Regdoc => format!("http://127.0.0.1:{}", self.regdoc_port.unwrap()),
            DaemonProxy::RegdocHttpsScheme => {
                format!("https://127.0.0.1:{}", self.regdoc_port.unwrap())
            }
            DaemonProxy::SquidOnly => format!("http://127.0.0.1:{}", self.squid_port.unwrap()),
            DaemonProxy::Direct => panic!("a client without a proxy has no proxy URL"),
        }
    }

    /// Stop the Docker daemon and start it again with its traffic going `via` (the `every_path`
    /// option starts both proxies). Images and the CLI's logins are kept.
    pub fn restart_dockerd(&mut self, via: DaemonProxy) {
        self.stop_dockerd();
        self.opts.daemon_proxy = via;
        self.start_dockerd();
    }

    fn stop_dockerd(&mut self) {
        if let Some(mut d) = self.dockerd.take() {
            d.stop();
            // If the daemon had to be killed, its containerd child may outlive it.
            let pidfile = self.dockerd_exec_root.join("containerd/containerd.pid");
            if let Some(pid) = fs::read_to_string(pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    fn start_dockerd(&mut self) {
        let d = &self.dir;
        let data = d.join("docker-data");
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&self.dockerd_exec_root).unwrap();
        // A private mount namespace gives the daemon its own hosts, resolver and certs.d.
        let script = format!(
            "set -e\nmount --make-rprivate /\n{mounts}\
             mkdir -p /etc/docker\nmount --bind {d}/etc-docker /etc/docker\n\
             exec {dockerd} --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
             --ip-forward=false --userland-proxy=false --max-download-attempts=1 --data-root {data} --exec-root {exec} \
             --pidfile {d}/dockerd.pid -H unix://{d}/docker.sock\n",
            d = d.display(),
            dockerd = program("dockerd").display(),
            data = data.display(),
            exec = self.dockerd_exec_root.display(),
            mounts = self.resolver_mounts(),
        );
        fs::write(d.join("dockerd.sh"), script).unwrap();
        let mut cmd = Command::new(program("unshare"));
        cmd.args(["-m", "--propagation", "private", "sh"])
            .arg(d.join("dockerd.sh"))
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin",
            )
            .env("SSL_CERT_FILE", self.system_roots());
        if self.opts.daemon_proxy != DaemonProxy::Direct {
            let proxy = self.proxy_url();
            cmd.env("HTTPS_PROXY", &proxy).env("HTTP_PROXY", &proxy);
        }
        for (k, v) in &self.opts.daemon_env {
            cmd.env(k, v);
        }
        let mut p = Proc::spawn("dockerd", &mut cmd, d.join("dockerd.log"));
        let ok = wait_until(Duration::from_secs(60), || {
            !matches!(p.child.try_wait(), Ok(None)) || self.docker_raw(&["version"], 10).success
        });
        assert!(
            ok && p.alive(),
            "dockerd did not start:\n{}",
            fs::read_to_string(&p.log).unwrap_or_default()
        );
        self.dockerd = Some(p);
    }

    fn docker_raw(&self, args: &[&str], secs: u64) -> Output {
        let mut cmd = Command::new(program("timeout"));
        cmd.args(["-k", "5", &secs.to_string()])
            .arg(program("docker"))
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}/docker.sock", self.dir.display()),
            )
            .env("DOCKER_CONFIG", self.dir.join("docker-cli"))
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY");
        run(cmd)
    }

    /// Run the docker CLI against the test's daemon (bounded to 150 s).
    pub fn docker(&self, args: &[&str]) -> Output {
        self.register_credentials(args, &["-p", "--password"]);
        let out = self.docker_raw(args, 150);
        eprintln!("$ docker {}\n{}{}", args.join(" "), out.stdout, out.stderr);
        out
    }

    pub fn docker_login(&self, user: &str, password: &str) -> Output {
        self.docker(&["login", "-u", user, "-p", password, REG_HOST])
    }

    /// Run skopeo through regdoc with the test's CAs (bounded to 150 s).
    pub fn skopeo(&self, args: &[&str]) -> Output {
        self.register_credentials(args, &["--creds", "--src-creds", "--dest-creds"]);
        let mut cmd = Command::new(program("timeout"));
        cmd.args(["-k", "5", "150"])
            .arg(program("skopeo"))
            .args(["--insecure-policy", "--command-timeout", "120s"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.dir)
            .env("SSL_CERT_FILE", self.system_roots())
            .env("HTTPS_PROXY", self.proxy_url())
            .env("HTTP_PROXY", self.proxy_url());
        let out = run(cmd);
        eprintln!("$ skopeo {}\n{}{}", args.join(" "), out.stdout, out.stderr);
        out
    }

    /// skopeo's `--cert-dir` for an invocation whose registry is `host`: the directory of
    /// `*.crt` for that host, the same one dockerd reads (`certs.d/<host>/ca.crt`, one CA).
    pub fn skopeo_cert_dir(&self, host: &str) -> String {
        self.dir
            .join("etc-docker/certs.d")
            .join(host)
            .display()
            .to_string()
    }

    /// containerd's registry configuration for `ctr --hosts-dir` (docs/hosts.md), one
    /// `<dir>/<host>/hosts.toml` per test host: one `[host."https://<host>"]` table whose `ca`
    /// is the one CA of [`Env::ca_for`], as `certs.d/<host>/ca.crt` holds for dockerd. No
    /// top-level `server`/`ca`: containerd 1.6.20 refuses a hosts.toml without a `[host]` table
    /// (`failed to decode hosts.toml" error="invalid `host` tree"`, then it ignores the file),
    /// and a `server` beside it would be a second, CA-less try of the same host. The `ca` is the
    /// server's trust on top of the system roots (`SSL_CERT_FILE`, the public CA), and the one
    /// TLS configuration `ctr` uses for every request of the pull, the 307 to the data endpoint
    /// and the token request included.
    fn write_containerd_hosts(&self) {
        let root = self.containerd_hosts_dir();
        for h in CLIENT_HOSTS {
            let d = root.join(h);
            fs::create_dir_all(&d).unwrap();
            let ca = self.dir.join(self.ca_for(h).file());
            fs::write(
                d.join("hosts.toml"),
                format!(
                    "# regdoc e2e: {h}, trusted through {ca_name}\n\
                     server = \"https://{h}\"\nca = \"{ca}\"\n\n\
                     # containerd 1.6.20 refuses a file without a host table.\n[host]\n",
                    ca_name = self.ca_for(h).file(),
                    ca = ca.display()
                ),
            )
            .unwrap();
        }
    }

    /// `ctr --hosts-dir`: the root of the per-host `hosts.toml` files.
    pub fn containerd_hosts_dir(&self) -> PathBuf {
        self.dir.join("containerd-hosts")
    }

    /// Which CA `<hosts dir>/<host>/hosts.toml` names as `ca`, or `None` when it names none of
    /// the run's CAs.
    pub fn containerd_trust(&self, host: &str) -> Option<Ca> {
        let text =
            fs::read_to_string(self.containerd_hosts_dir().join(host).join("hosts.toml")).ok()?;
        let ca = text.lines().find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("ca")?
                .trim_start()
                .strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })?;
        let have = fs::read(ca).ok()?;
        [Ca::Registry, Ca::Public, Ca::Regdoc]
            .into_iter()
            .find(|c| fs::read(self.dir.join(c.file())).ok().as_ref() == Some(&have))
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    /// A private containerd: its own root, state and sockets under the test directory, the CRI
    /// plugin disabled, in a private mount namespace with the test's hosts and resolver (like
    /// dockerd) and regdoc as its proxy in its environment, as a node's drop-in gives it. `ctr
    /// images pull` does not use that environment (the pull runs in `ctr`), but a containerd
    /// that resolved anything would do it on the machine only.
    fn start_containerd(&mut self) {
        let d = self.dir.join("containerd");
        for sub in ["root", "state", "opt"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
             [grpc]\n  address = \"{sock}\"\n\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\n\
             [debug]\n  address = \"\"\n\n[metrics]\n  address = \"\"\n\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            d = d.display(),
            sock = self.containerd_socket().display(),
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let script = format!(
            "set -e\nmount --make-rprivate /\n{mounts}exec {containerd} --config {d}/config.toml\n",
            mounts = self.resolver_mounts(),
            containerd = program("containerd").display(),
            d = d.display(),
        );
        fs::write(self.dir.join("containerd.sh"), script).unwrap();
        let mut cmd = Command::new(program("unshare"));
        cmd.args(["-m", "--propagation", "private", "sh"])
            .arg(self.dir.join("containerd.sh"))
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin",
            )
            .env("SSL_CERT_FILE", self.system_roots());
        if self.opts.daemon_proxy != DaemonProxy::Direct {
            let proxy = self.proxy_url();
            cmd.env("HTTPS_PROXY", &proxy)
                .env("HTTP_PROXY", &proxy)
                .env("NO_PROXY", "localhost,127.0.0.1");
        }
        let mut p = Proc::spawn("containerd", &mut cmd, self.dir.join("containerd.log"));
        let ok = wait_until(Duration::from_secs(60), || {
            !matches!(p.child.try_wait(), Ok(None)) || self.ctr_raw(&["version"], 10).success
        });
        assert!(
            ok && p.alive(),
            "containerd did not start:\n{}",
            fs::read_to_string(&p.log).unwrap_or_default()
        );
        self.containerd = Some(p);
    }

    /// `ctr --address <test socket> -n regdoc-e2e ARGS`, bounded to `secs`, in a private mount
    /// namespace with the test's hosts and resolver, with regdoc as its proxy (`HTTPS_PROXY`,
    /// `HTTP_PROXY`) and the public CA as its system roots.
    fn ctr_raw(&self, args: &[&str], secs: u64) -> Output {
        let mut cmd = Command::new(program("timeout"));
        cmd.args(["-k", "5", &secs.to_string()])
            .arg(program("unshare"))
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "set -e\nmount --make-rprivate /\n{}exec \"$@\"",
                self.resolver_mounts()
            ))
            .arg("sh")
            .arg(program("ctr"))
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["-n", CTR_NAMESPACE])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.dir)
            .env("SSL_CERT_FILE", self.system_roots());
        if self.opts.daemon_proxy != DaemonProxy::Direct {
            let proxy = self.proxy_url();
            cmd.env("HTTPS_PROXY", &proxy).env("HTTP_PROXY", &proxy);
        }
        run(cmd)
    }

    /// Run `ctr` against the test's containerd (bounded to 150 s).
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.register_credentials(args, &["--user", "-u"]);
        let out = self.ctr_raw(args, 150);
        eprintln!("$ ctr {}\n{}{}", args.join(" "), out.stdout, out.stderr);
        out
    }

    /// `ctr images pull --hosts-dir <test hosts dir> --snapshotter native [--user USER:PASSWORD]
    /// <reference>`: the pull runs in `ctr`, through regdoc. The `native` snapshotter unpacks
    /// by copying, as dockerd's `vfs` here, where overlay mounts may not be available.
    pub fn ctr_pull(&self, reference: &str, creds: Option<(&str, &str)>) -> Output {
        let hosts = self.containerd_hosts_dir().display().to_string();
        let user = creds.map(|(u, p)| format!("{u}:{p}"));
        let mut args = vec![
            "images",
            "pull",
            "--hosts-dir",
            &hosts,
            "--snapshotter",
            "native",
        ];
        if let Some(u) = &user {
            args.extend(["--user", u]);
        }
        args.push(reference);
        self.ctr(&args)
    }

    /// `ctr images push --hosts-dir <test hosts dir> [--user USER:PASSWORD] <reference>`: the
    /// push runs in `ctr`, through regdoc.
    pub fn ctr_push(&self, reference: &str, creds: Option<(&str, &str)>) -> Output {
        let hosts = self.containerd_hosts_dir().display().to_string();
        let user = creds.map(|(u, p)| format!("{u}:{p}"));
        let mut args = vec!["images", "push", "--hosts-dir", &hosts];
        if let Some(u) = &user {
            args.extend(["--user", u]);
        }
        args.push(reference);
        self.ctr(&args)
    }

    /// Every JSON record regdoc wrote so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let markers = self.markers.lock().map(|m| m.clone()).unwrap_or_default();
        self.all_records()
            .into_iter()
            .filter(|r| {
                r.get("client")
                    .and_then(|v| v.as_str())
                    .is_none_or(|c| !markers.iter().any(|m| m == c))
            })
            .collect()
    }

    /// Every record in regdoc's log, the harness's markers included.
    fn all_records(&self) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(&self.regdoc_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    /// Wait until everything regdoc wrote before now is in its log file. The client having
    /// returned means regdoc emitted the records of what it answered, but its writer holds
    /// lines back a little: a marker request sent now is logged after them, in order, so once
    /// the marker's connection record is in the file, so are they. (The marker is a malformed
    /// request; its records are left out of [`Env::records`].)
    pub fn settle(&self) {
        let Some(port) = self.regdoc_port else {
            return;
        };
        // Each marker from a loopback address of its own: regdoc counts a client's repeated
        // failure without a record of its own (one line per storm), so a second marker from
        // the same address would never be logged.
        let n = {
            let m = self.markers.lock().map(|m| m.len()).unwrap_or(0);
            (m % 50) as u8
        };
        let Ok(mut s) = connect_from(
            std::net::Ipv4Addr::new(127, 0, 0, 200 + n),
            SocketAddr::from(([127, 0, 0, 1], port)),
        ) else {
            return;
        };
        let me = match s.local_addr() {
            Ok(a) => a.to_string(),
            Err(_) => return,
        };
        if let Ok(mut m) = self.markers.lock() {
            m.push(me.clone());
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"REGDOC-E2E-MARKER\r\n\r\n");
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut sink);
        drop(s);
        let logged = wait_until(Duration::from_secs(20), || {
            self.all_records().iter().any(|r| {
                r.get("event").and_then(|v| v.as_str()) == Some("connection")
                    && r.get("client").and_then(|v| v.as_str()) == Some(me.as_str())
            })
        });
        assert!(logged, "regdoc never logged the harness's marker request");
    }

    pub fn failures(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| r.get("event").and_then(|v| v.as_str()) == Some("failure"))
            .collect()
    }

    /// Failure records, waiting up to 20 s for the first one (records are written when the
    /// failure happens; the client may print before the log line is flushed), then for the log
    /// to hold everything regdoc wrote so far.
    pub fn wait_failures(&self) -> Vec<serde_json::Value> {
        wait_until(Duration::from_secs(20), || !self.failures().is_empty());
        self.settle();
        self.failures()
    }

    /// Logs of every process, for a failed assertion.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for f in [
            "regdoc.stderr",
            "regdoc.jsonl",
            "registry.log",
            "dockerd.log",
            "containerd.log",
            "squid/cache.log",
            "squid/access.log",
            "mitmdump.log",
        ] {
            if let Ok(t) = fs::read_to_string(self.dir.join(f)) {
                let tail: Vec<&str> = t.lines().rev().take(40).collect();
                s.push_str(&format!("---- {f} (last lines)\n"));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }
}

impl Env {
    /// Register the value after each of `flags` in a client's arguments as a secret, and its
    /// Basic form (`user:password`) when a user name is given too.
    fn register_credentials(&self, args: &[&str], flags: &[&str]) {
        let after = |names: &[&str]| {
            args.windows(2)
                .find(|w| names.contains(&w[0]))
                .map(|w| w[1].to_string())
        };
        let Some(secret) = after(flags) else {
            return;
        };
        // `user:password` forms (skopeo's --creds) are themselves the Basic credential.
        let password = secret.split_once(':').map_or(secret.as_str(), |(_, p)| p);
        self.secrets.register(password);
        if secret.contains(':') {
            self.secrets.register(secret.clone());
        } else if let Some(user) = after(&["-u", "--username"]) {
            self.secrets.register(format!("{user}:{secret}"));
        }
    }

    /// The secret scan: regdoc's log, stderr and `regdoc report` of the log must name none of
    /// the scenario's secrets, in any encoding. Runs once regdoc has stopped.
    fn leaked_secret(&self) -> Option<String> {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let report = Command::new(env!("CARGO_BIN_EXE_regdoc"))
            .arg("report")
            .arg(&self.regdoc_log)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        [
            ("regdoc's log", read("regdoc.jsonl")),
            ("regdoc's stderr", read("regdoc.stderr")),
            ("regdoc report", report),
        ]
        .iter()
        .find_map(|(what, text)| {
            self.secrets
                .find_in(text)
                .map(|hit| format!("{what} leaks a secret: {hit}"))
        })
    }
}

/// What `regdoc doctor` needs of the running daemon (tests/e2e_doctor.rs).
impl Env {
    /// The pid of the running Docker daemon: `unshare` and `sh` exec into `dockerd`, so the
    /// child the harness started is the daemon itself.
    pub fn dockerd_pid(&self) -> Option<u32> {
        self.dockerd.as_ref().map(Proc::pid)
    }

    /// The pid of the running containerd (`unshare` and `sh` exec into it, as for dockerd).
    pub fn containerd_pid(&self) -> Option<u32> {
        self.containerd.as_ref().map(Proc::pid)
    }

    /// The directory bind-mounted over the daemon's `/etc/docker` (certs.d, daemon.json).
    pub fn dockerd_etc(&self) -> PathBuf {
        self.dir.join("etc-docker")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_dockerd();
        self.containerd.take();
        let scanned = self.regdoc.take().is_some();
        // regdoc has stopped: its log holds its last line.
        let leak = if scanned && !std::thread::panicking() {
            self.leaked_secret()
        } else {
            None
        };
        self.squid.take();
        self.mitmproxy.take();
        self.registry.take();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.dns.take();
        self.netns.take();
        if std::env::var_os("REGDOC_E2E_KEEP").is_some() {
            if let Some(t) = self.tmp.take() {
                eprintln!("e2e: kept {}", t.keep().display());
            }
        }
        self.tmp.take();
        // Only now, with everything torn down, so that the next scenario starts clean.
        if let Some(leak) = leak {
            panic!("{leak}");
        }
    }
}

fn run(mut cmd: Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The cause id of a failure record (`cause` is an id, or an object with an `id`).
pub fn cause_id(rec: &serde_json::Value) -> Option<String> {
    match rec.get("cause")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("id")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Whether regdoc's `client_symptom` says what the client printed: the whole predicted line,
/// `Error response from daemon: ` included when regdoc predicts it, must appear in the client's
/// output. (A push or pull that already streams progress prints its error without that prefix,
/// so a prediction with it is wrong there.)
pub fn symptom_matches(client_output: &str, symptom: &str) -> bool {
    let line = symptom.trim();
    !line.is_empty() && client_output.contains(line)
}

/// The message part of a Docker-shaped symptom: what follows `Get "<url>": `, which other
/// clients (skopeo) print inside their own framing.
pub fn symptom_message(symptom: &str) -> &str {
    let s = symptom
        .trim()
        .trim_start_matches("Error response from daemon: ");
    match (s.starts_with("Get \""), s.find("\": ")) {
        (true, Some(i)) => &s[i + 3..],
        _ => s,
    }
}

/// How strictly `client_symptom` must match the client's output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SymptomMatch {
    /// The whole line, prefix included: Docker.
    Whole,
    /// The registry's or regdoc's message only: clients that frame it their own way (skopeo).
    Message,
}

impl SymptomMatch {
    /// Whether `symptom` is in `client_output`, at this strictness.
    pub fn matches(self, client_output: &str, symptom: &str) -> bool {
        match self {
            SymptomMatch::Whole => symptom_matches(client_output, symptom),
            SymptomMatch::Message => symptom_matches(client_output, symptom_message(symptom)),
        }
    }
}

/// The line regdoc says the client printed (`client_symptom`): only when regdoc knows the words.
/// `expected_client_symptom` (what a client would likely print, where regdoc cannot see it,
/// e.g. through a passthrough tunnel) is never read as proof.
pub fn client_symptom(rec: &serde_json::Value) -> Option<&str> {
    rec.get("client_symptom")
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
}

/// `expected_client_symptom`: regdoc's guess where it could not see the client's words.
pub fn expected_client_symptom(rec: &serde_json::Value) -> Option<&str> {
    rec.get("expected_client_symptom")
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
}

/// Where regdoc's answer for a name came from (`hosts_file`, `resolver`, `override`, ...), in
/// a connection or failure record. The one place that knows the field: `dns.source` first, then
/// the other spellings it may take.
pub fn dns_source_of(rec: &serde_json::Value) -> Option<String> {
    [
        "/dns/source",
        "/resolved/source",
        "/dns_source",
        "/phases/dns/source",
    ]
    .iter()
    .find_map(|p| rec.pointer(p).and_then(|v| v.as_str()))
    .map(str::to_string)
}

/// The cause ids of a failure record's `other_causes` (less likely alternatives), in order.
pub fn other_cause_ids(rec: &serde_json::Value) -> Vec<String> {
    rec.get("other_causes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("cause").and_then(|c| c.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What a failure scenario expects of regdoc's records.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The cause every failure record must name.
    pub cause: &'a str,
    /// Its `other_causes`, exactly, in order.
    pub other_causes: &'a [&'a str],
    pub how: SymptomMatch,
    /// Failure records with neither `client_symptom` nor `expected_client_symptom` are
    /// acceptable (besides the one whose `client_symptom` is the proof). Off unless a test says
    /// why.
    pub symptomless_records_ok: bool,
}

impl<'a> Expect<'a> {
    pub fn cause(cause: &'a str) -> Expect<'a> {
        Expect {
            cause,
            other_causes: &[],
            how: SymptomMatch::Whole,
            symptomless_records_ok: false,
        }
    }
}

/// Assert that every failure regdoc wrote names `cause`, with no alternative, and that the
/// `client_symptom` of one of them is what the Docker client printed. Returns that record.
pub fn assert_diagnosed(env: &Env, client: &Output, cause: &str) -> serde_json::Value {
    assert_diagnosed_as(env, client, cause, &[], SymptomMatch::Whole)
}

/// [`assert_diagnosed`] with the alternatives regdoc must list in `other_causes` (exactly, in
/// order) and a chosen strictness for the symptom.
pub fn assert_diagnosed_as(
    env: &Env,
    client: &Output,
    cause: &str,
    other_causes: &[&str],
    how: SymptomMatch,
) -> serde_json::Value {
    assert_diagnosed_expect(
        env,
        client,
        Expect {
            cause,
            other_causes,
            how,
            symptomless_records_ok: false,
        },
    )
}

/// Print one line per failure record (what a failed assertion needs first).
fn print_failures(failures: &[serde_json::Value]) {
    for r in failures {
        eprintln!(
            "e2e: failure record: cause={:?} other_causes={:?} target={:?} phase={:?} client_symptom={:?} expected_client_symptom={:?}",
            cause_id(r),
            other_cause_ids(r),
            r.get("target").and_then(|v| v.as_str()).unwrap_or(""),
            r.get("phase").and_then(|v| v.as_str()).unwrap_or(""),
            client_symptom(r),
            expected_client_symptom(r),
        );
    }
}

/// The general form: every failure record names `e.cause` with exactly `e.other_causes`; one
/// record's `client_symptom` (never `expected_client_symptom`) is in the client's output at
/// `e.how`; every record says what the client sees (`client_symptom` or
/// `expected_client_symptom`) unless `e.symptomless_records_ok`. Returns the proving record.
pub fn assert_diagnosed_expect(env: &Env, client: &Output, e: Expect) -> serde_json::Value {
    let failures = env.wait_failures();
    let text = client.text();
    print_failures(&failures);
    assert!(
        !failures.is_empty()
            && failures.iter().all(|r| {
                cause_id(r).as_deref() == Some(e.cause) && other_cause_ids(r) == e.other_causes
            }),
        "every failure record must name cause {:?} with other_causes {:?}; failures: {failures:#?}\nclient printed:\n{text}\n{}",
        e.cause,
        e.other_causes,
        env.dump()
    );
    if !e.symptomless_records_ok {
        let silent: Vec<&serde_json::Value> = failures
            .iter()
            .filter(|r| client_symptom(r).is_none() && expected_client_symptom(r).is_none())
            .collect();
        assert!(
            silent.is_empty(),
            "failure records with neither client_symptom nor expected_client_symptom: {silent:#?}"
        );
    }
    let Some(rec) = failures
        .iter()
        .find(|r| client_symptom(r).is_some_and(|s| e.how.matches(&text, s)))
    else {
        let symptoms: Vec<Option<&str>> = failures.iter().map(client_symptom).collect();
        panic!(
            "no client_symptom of regdoc ({symptoms:#?}) is what the client printed ({:?} match):\n{text}\nfailures: {failures:#?}",
            e.how
        );
    };
    if env.opts.containerd && !env.opts.docker {
        assert_containerd_remedies(&failures);
    }
    eprintln!(
        "e2e: cause={} other_causes={:?} client_symptom={:?}",
        e.cause,
        e.other_causes,
        client_symptom(rec)
    );
    rec.clone()
}

/// A containerd node is told containerd's steps: no record's remedy names a step only a Docker
/// host has (its daemon, `docker login`, /etc/docker/certs.d).
fn assert_containerd_remedies(failures: &[serde_json::Value]) {
    for r in failures {
        let remedy = r.get("remedy").and_then(|v| v.as_array());
        assert!(
            remedy.is_some_and(|steps| !steps.is_empty()),
            "a diagnosed failure has steps: {r:#}"
        );
        for step in remedy.into_iter().flatten() {
            let step = step.as_str().unwrap_or_default().to_ascii_lowercase();
            assert!(
                !["docker", "daemon.json", "the daemon"]
                    .iter()
                    .any(|w| step.contains(w)),
                "a Docker step in a containerd node's record: {step}\n{r:#}"
            );
        }
    }
}

/// regdoc claims no words the client did not print: every failure record's `client_symptom`
/// (when it has one) is in the client's output. Returns the failure records.
pub fn assert_no_unprinted_symptom(
    env: &Env,
    client: &Output,
    how: SymptomMatch,
) -> Vec<serde_json::Value> {
    let failures = env.wait_failures();
    print_failures(&failures);
    let text = client.text();
    let wrong: Vec<&serde_json::Value> = failures
        .iter()
        .filter(|r| client_symptom(r).is_some_and(|s| !how.matches(&text, s)))
        .collect();
    assert!(
        wrong.is_empty(),
        "regdoc claims a client_symptom the client did not print ({how:?} match):\n{text}\nrecords: {wrong:#?}"
    );
    failures
}

/// regdoc must have carried the traffic: a connection record names the host, in `mode`
/// (`tunnel`, `intercept`) when given (waiting up to 10 s for it).
pub fn assert_regdoc_saw(env: &Env, host: &str, mode: Option<&str>) {
    let seen = || {
        env.records().iter().any(|r| {
            r.get("event").and_then(|v| v.as_str()) == Some("connection")
                && r.get("target")
                    .and_then(|v| v.as_str())
                    .is_some_and(|t| t.starts_with(host))
                && mode.is_none_or(|m| r.get("mode").and_then(|v| v.as_str()) == Some(m))
        })
    };
    // Connection records are written when the client's connection ends (dockerd may keep an
    // idle one open a little after the command returned).
    assert!(
        wait_until(Duration::from_secs(10), seen),
        "regdoc logged no connection to {host} (mode {mode:?}):\n{}",
        env.dump()
    );
}

/// regdoc carried `host` through its upstream proxy: its connection records for the host (at
/// least one, in `mode`) all name the test's squid as `upstream_proxy`, with
/// `phases.upstream_proxy.outcome == "ok"`, and squid's access log shows the CONNECT it
/// tunnelled to the host's namespace address (squid writes that line when the tunnel ends).
pub fn assert_regdoc_went_through_squid(env: &Env, host: &str, mode: &str) {
    let squid = env
        .squid_addr()
        .expect("assert_regdoc_went_through_squid needs a test that runs squid");
    let of_host = || -> Vec<serde_json::Value> {
        env.records()
            .into_iter()
            .filter(|r| {
                r.get("event").and_then(|v| v.as_str()) == Some("connection")
                    && r.get("target")
                        .and_then(|v| v.as_str())
                        .is_some_and(|t| t.starts_with(host))
            })
            .collect()
    };
    // Connection records are written when the client's connection ends.
    wait_until(Duration::from_secs(10), || {
        of_host()
            .iter()
            .any(|r| r.get("mode").and_then(|v| v.as_str()) == Some(mode))
    });
    let recs = of_host();
    assert!(
        recs.iter()
            .any(|r| r.get("mode").and_then(|v| v.as_str()) == Some(mode)),
        "regdoc logged no {mode} connection to {host}: {recs:#?}\n{}",
        env.dump()
    );
    for r in &recs {
        let upstream = r.get("upstream_proxy").and_then(|v| v.as_str());
        let outcome = r
            .pointer("/phases/upstream_proxy/outcome")
            .and_then(|v| v.as_str());
        assert!(
            upstream == Some(squid.as_str()) && outcome == Some("ok"),
            "every connection to {host} must go through squid ({squid}) with \
             phases.upstream_proxy.outcome \"ok\"; this one: {r:#}\n{}",
            env.dump()
        );
    }
    let ip = zone()[host];
    let tunnelled = |log: &str| {
        log.lines().any(|l| {
            l.contains(&format!("CONNECT {host}:443 "))
                && l.contains(&format!("/{ip} "))
                && l.contains("/200 ")
        })
    };
    wait_until(Duration::from_secs(10), || {
        tunnelled(&env.squid_access_log())
    });
    assert!(
        tunnelled(&env.squid_access_log()),
        "squid's access log shows no tunnel to {host} ({ip}):\n{}",
        env.squid_access_log()
    );
}

/// Assert regdoc logged no failure at all (healthy scenarios).
pub fn assert_no_failures(env: &Env) {
    env.settle();
    let f = env.failures();
    assert!(
        f.is_empty(),
        "healthy scenario, yet regdoc logged failures: {f:#?}"
    );
}

/// A line that must appear in the client's output.
pub fn assert_printed(client: &Output, needle: &str) {
    assert!(
        client.text().contains(needle),
        "expected the client to print {needle:?}, it printed:\n{}",
        client.text()
    );
}

/// For hand runs: keep the last environment's files (`REGDOC_E2E_KEEP=1`).
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "e2e: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_SAID: &str = "Error response from daemon: Get \"https://r.azurecr.io/v2/\": regdoc: connection to 10.0.0.5:443 refused\n";

    #[test]
    fn symptom_must_be_what_the_client_printed() {
        assert!(symptom_matches(
            DOCKER_SAID,
            "Error response from daemon: Get \"https://r.azurecr.io/v2/\": regdoc: connection to 10.0.0.5:443 refused"
        ));
        assert!(symptom_matches(
            DOCKER_SAID,
            "Get \"https://r.azurecr.io/v2/\": regdoc: connection to 10.0.0.5:443 refused"
        ));
        assert!(!symptom_matches(
            DOCKER_SAID,
            "Error response from daemon: Get \"https://r.azurecr.io/v2/\": Bad Gateway"
        ));
        assert!(!symptom_matches(DOCKER_SAID, ""));
    }

    #[test]
    fn the_prefix_is_part_of_the_prediction() {
        // A push streams progress, then prints the registry's error without the prefix: a
        // prediction with the prefix is not what the client printed.
        let push = "The push refers to repository [r.azurecr.io/e2e/busybox]\nerrors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n";
        assert!(!symptom_matches(
            push,
            "Error response from daemon: unauthorized: authentication required"
        ));
        assert!(symptom_matches(
            push,
            "denied: requested access to the resource is denied"
        ));
        // A different prefix is no match either.
        assert!(!symptom_matches(
            "Error: Get \"https://r.azurecr.io/v2/\": EOF\n",
            "Error response from daemon: Get \"https://r.azurecr.io/v2/\": EOF"
        ));
        assert!(SymptomMatch::Message.matches(
            "msg=\"initializing source: unauthorized: authentication required\"",
            "Error response from daemon: Get \"https://r.azurecr.io/v2/\": unauthorized: authentication required"
        ));
    }

    #[test]
    fn only_client_symptom_is_proof() {
        let known = serde_json::json!({"client_symptom": "Error response from daemon: x"});
        let guessed =
            serde_json::json!({"expected_client_symptom": "Error response from daemon: x"});
        let blank = serde_json::json!({"client_symptom": " "});
        assert_eq!(
            client_symptom(&known),
            Some("Error response from daemon: x")
        );
        assert_eq!(client_symptom(&guessed), None);
        assert_eq!(
            expected_client_symptom(&guessed),
            Some("Error response from daemon: x")
        );
        assert_eq!(client_symptom(&blank), None);
    }

    #[test]
    fn dns_source_is_read_from_one_place() {
        let failure =
            serde_json::json!({"dns": {"source": "hosts_file", "addresses": ["203.0.113.2"]}});
        let other = serde_json::json!({"resolved": {"source": "hosts_file"}});
        let none = serde_json::json!({"resolved": ["203.0.113.2:443"]});
        assert_eq!(dns_source_of(&failure).as_deref(), Some("hosts_file"));
        assert_eq!(dns_source_of(&other).as_deref(), Some("hosts_file"));
        assert_eq!(dns_source_of(&none), None);
    }

    #[test]
    fn symptom_message_is_what_follows_the_url() {
        assert_eq!(
            symptom_message("Error response from daemon: Get \"https://r.azurecr.io/v2/\": unauthorized: authentication required"),
            "unauthorized: authentication required"
        );
        assert_eq!(
            symptom_message(
                "Error response from daemon: denied: requested access to the resource is denied"
            ),
            "denied: requested access to the resource is denied"
        );
    }

    #[test]
    fn other_causes_in_order() {
        let r = serde_json::json!({"cause": "a", "other_causes": [
            {"cause": "b", "confidence": "low"}, {"cause": "c", "confidence": "low"}]});
        assert_eq!(other_cause_ids(&r), vec!["b", "c"]);
        assert!(other_cause_ids(&serde_json::json!({"cause": "a"})).is_empty());
    }

    #[test]
    fn cause_is_an_id_or_an_object() {
        let a = serde_json::json!({"cause": "registry_name"});
        let b = serde_json::json!({"cause": {"id": "registry_name"}});
        let c = serde_json::json!({"cause": null});
        assert_eq!(cause_id(&a).as_deref(), Some("registry_name"));
        assert_eq!(cause_id(&b).as_deref(), Some("registry_name"));
        assert_eq!(cause_id(&c), None);
    }
}
