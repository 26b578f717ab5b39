//! What the client printed for one failure, or what regdoc expects it printed.
//!
//! The words follow from what happened, never from the cause: the operation (login, pull,
//! push), what regdoc answered itself or passed on from the registry, who closed first, and the
//! URL as the client writes it (Go keeps the port unless it is 443). The message formats are one
//! table ([`formats::FORMATS`]); each row is checked against the real daemon end to end.
//!
//! A symptom is [`Basis::Known`] when the client's words are determined by what regdoc saw or
//! sent (its own reason phrase, the registry's reply through interception, the end of a tunnel
//! regdoc closed). Inside a tunnel regdoc does not decrypt it can only expect: such a symptom
//! is [`Basis::Expected`] and is written to `expected_client_symptom`, never to
//! `client_symptom`. Where regdoc cannot even expect (the connection goes on), there is none.

pub mod distribution;
pub mod formats;
pub mod operation;

use super::text::redact;
use crate::config::ClientKind;
use crate::observe::{CertProblem, FailureEvent, FailureKind, HttpExchange};
use formats::{render, DAEMON_PREFIX};
pub use operation::Operation;

/// How regdoc knows the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Determined by what regdoc saw or sent.
    Known,
    /// What the client prints in this situation, but regdoc did not see the client's side.
    Expected,
}

/// The client's line for one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symptom {
    pub text: String,
    pub basis: Basis,
    /// Row of [`formats::FORMATS`] it was rendered from.
    pub format: &'static str,
}

/// What the context adds to one failure: the operation and, for a token service, the registry
/// the client was logging in to or pulling from.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    pub operation: Option<Operation>,
    /// `host:port` of the registry that sent the client to this token service.
    pub registry_target: Option<String>,
    /// The client regdoc predicts for when the traffic does not name one (`diagnosis.client`).
    pub client: ClientKind,
}

/// The URL a client names for the registry API at `host:port`, as Go writes it: the port is
/// kept unless it is 443 (Docker's registry URLs carry the port the image reference named).
pub fn api_url(host: &str, port: u16) -> String {
    format!("https://{}/v2/", crate::config::authority(host, port, 443))
}

fn url_of_target(target: &str) -> String {
    match crate::config::split_host_port(target) {
        Some((h, p)) => api_url(&h, p),
        None => format!("https://{target}/v2/"),
    }
}

fn known(format: &'static str, text: String) -> Option<Symptom> {
    Some(Symptom {
        text,
        basis: Basis::Known,
        format,
    })
}

fn expected(format: &'static str, text: String) -> Option<Symptom> {
    Some(Symptom {
        text,
        basis: Basis::Expected,
        format,
    })
}

/// Whether the CLI puts [`DAEMON_PREFIX`] before an error of `op` at this step: a login's
/// errors, and a pull's before it starts streaming progress (ping, token, manifest). Pushes and
/// layer downloads stream; an unknown operation gets no prefix, so the line is what every form
/// has in common.
fn prefixed(op: Operation, ex: Option<&HttpExchange>) -> bool {
    match op {
        Operation::Login => true,
        Operation::Pull => ex.is_none_or(|e| e.path_class != "blob"),
        Operation::Push | Operation::Unknown => false,
    }
}

fn with_prefix(prefix: bool, s: String) -> String {
    if prefix {
        format!("{DAEMON_PREFIX}{s}")
    } else {
        s
    }
}

/// regdoc's own answer to the client, which the client prints in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The status line's text of a refused CONNECT (or forwarded request): Go prints it as
    /// the error.
    Connect(&'a str),
    /// An HTTP answer regdoc made inside an intercepted tunnel, in place of the server's.
    Http { status: u16, reason: &'a str },
    /// A fatal TLS alert regdoc sent in answer to the client's ClientHello in an intercepted
    /// tunnel (its description in snake_case, `unrecognized_name`), instead of a certificate.
    Alert(&'a str),
}

/// The client's line for `ev`. `reply` is what regdoc answered the client itself, `None` when
/// it closed the connection or the failure happened inside a tunnel.
pub fn client_symptom(
    ev: &FailureEvent,
    reply: Option<Reply<'_>>,
    situation: &Situation,
) -> Option<Symptom> {
    let docker = docker_symptom(ev, reply, situation)?;
    // An exchange regdoc read is worded for the client its User-Agent names (`http_symptom`);
    // before any exchange only the configuration says which client it is.
    if ev.http.is_none() && situation.client == ClientKind::Containerd {
        return Some(as_containerd(docker));
    }
    Some(docker)
}

/// The client a failure is worded for: the one the exchange's `User-Agent` names when regdoc
/// read one that names containerd or Docker, else the configured one.
pub fn client_of(ev: &FailureEvent, situation: &Situation) -> ClientKind {
    match &ev.http {
        Some(ex) if ex.from_containerd() => ClientKind::Containerd,
        Some(ex)
            if ex
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("docker/")) =>
        {
            ClientKind::Docker
        }
        _ => situation.client,
    }
}

/// containerd's line for a failure worded the Docker way. containerd's first request is the
/// tag's `HEAD /v2/NAME/manifests/TAG`, not Docker's ping, and it frames an error as `failed to
/// do request: Head "URL": ERROR`; regdoc saw no NAME or TAG inside a tunnel, so it keeps ERROR,
/// the part after Docker's `Get "URL": `. A line without that framing (an x509 error, a data
/// endpoint's reason) is the same for both clients.
fn as_containerd(docker: Symptom) -> Symptom {
    let text = docker.text.trim_start_matches(DAEMON_PREFIX);
    let Some(error) = text
        .strip_prefix("Get \"")
        .and_then(|rest| rest.split_once("\": "))
        .map(|(_, error)| error.to_string())
    else {
        return docker;
    };
    // Checked against ctr end to end: regdoc's own refusal, a tunnel that ended before the
    // server's TLS answer and Go's handshake timeout; the rest stays an expectation.
    let basis = if matches!(
        docker.format,
        "proxy_refused" | "tunnel_eof" | "tls_handshake_timeout"
    ) {
        docker.basis
    } else {
        Basis::Expected
    };
    Symptom {
        text: render("containerd_request_error", &[("error", &error)]),
        basis,
        format: "containerd_request_error",
    }
}

/// [`client_symptom`] in the Docker daemon's words.
fn docker_symptom(
    ev: &FailureEvent,
    reply: Option<Reply<'_>>,
    situation: &Situation,
) -> Option<Symptom> {
    let op = situation.operation.unwrap_or(Operation::Unknown);
    let url = api_url(&ev.host, ev.port);
    let get = |format: &'static str, vars: &[(&str, &str)]| {
        let mut all = vec![("url", url.as_str())];
        all.extend_from_slice(vars);
        with_prefix(prefixed(op, ev.http.as_ref()), render(format, &all))
    };
    let data = ev.endpoint.kind.is_data();

    if ev.kind == FailureKind::TlsInsteadOfHttp {
        // The daemon read regdoc's plain answer as a TLS record. Its ClientHello named the
        // proxy, not the registry, so without a host the URL part is left out.
        let format = if reply.is_some() {
            "proxyconnect_tls"
        } else {
            "proxyconnect_eof"
        };
        let line = get(format, &[]);
        return if ev.host.is_empty() {
            let tail = line.split_once("\": ").map(|(_, t)| t.to_string());
            known(format, tail.unwrap_or(line))
        } else {
            known(format, line)
        };
    }
    match reply {
        Some(Reply::Http { status, reason }) => return own_http_reply(ev, op, status, reason),
        Some(Reply::Alert(description)) => {
            let alert = distribution::alert_text(description);
            return known(
                "tls_remote_alert",
                get("tls_remote_alert", &[("alert", &alert)]),
            );
        }
        Some(Reply::Connect(reason)) => {
            let reason = redact(reason);
            let reason = if reason.is_empty() {
                "unknown status code".to_string()
            } else {
                reason
            };
            if data {
                // Layer and configuration downloads: dockerd frames the error its own way, so
                // the reason is the part every form shares.
                return known("proxy_refused_data", reason);
            }
            return known(
                "proxy_refused",
                get("proxy_refused", &[("reason", &reason)]),
            );
        }
        None => {}
    }
    // Past this point regdoc did not answer: the client saw what the server sent, or the end of
    // a connection regdoc closed.
    let tunnel_line = |format: &'static str, vars: &[(&str, &str)]| {
        if data {
            // The client names a blob URL regdoc never saw (the path of a redirect).
            let blob = format!("https://{}/…", ev.host);
            expected(
                format,
                render(format, &[&[("url", blob.as_str())], vars].concat()),
            )
        } else {
            known(format, get(format, vars))
        }
    };
    match &ev.kind {
        FailureKind::HttpStatus { .. } => ev
            .http
            .as_ref()
            .and_then(|ex| http_symptom(ev, ex, situation)),
        FailureKind::ResponseHeadersTimeout => {
            expected("awaiting_headers", get("awaiting_headers", &[]))
        }
        FailureKind::TlsServerSilent if ev.client_gave_up => {
            tunnel_line("tls_handshake_timeout", &[])
        }
        // regdoc's own deadline, or the server, ended the tunnel first: end of stream.
        FailureKind::TlsServerSilent
        | FailureKind::TlsServerClosed
        | FailureKind::TlsServerReset => tunnel_line("tunnel_eof", &[]),
        FailureKind::TlsNotTls => tunnel_line("tls_not_tls", &[]),
        FailureKind::TlsAlert { description, .. } => {
            let alert = distribution::alert_text(description);
            tunnel_line("tls_remote_alert", &[("alert", &alert)])
        }
        FailureKind::TlsUpstreamCertificate { problem, .. } => {
            // What a client that checked this certificate itself prints; regdoc refused it in
            // the client's place, so the client's actual line is regdoc's reply.
            expected("x509", render("x509", &[("x509", x509_text(*problem))]))
        }
        FailureKind::TlsClientRejected { .. } => {
            // The client refused regdoc's certificate, minted for the name it asked for and
            // valid: the one thing it can lack is trust in regdoc's CA.
            let x509 = x509_text(CertProblem::UnknownIssuer);
            known("x509", render("x509", &[("x509", x509)]))
        }
        FailureKind::TlsClientRefused { probe, .. } => {
            // The client's alert (encrypted under TLS 1.3) does not say why; regdoc's own look
            // at the chain does, when the probe ran.
            match probe.as_ref().and_then(|p| p.problem) {
                Some(problem) => known("x509", render("x509", &[("x509", x509_text(problem))])),
                None => expected(
                    "x509",
                    render("x509", &[("x509", x509_text(CertProblem::UnknownIssuer))]),
                ),
            }
        }
        // Failures before any tunnel that regdoc answered by closing the connection.
        FailureKind::DnsNxDomain
        | FailureKind::DnsNoAddresses
        | FailureKind::DnsTimeout
        | FailureKind::DnsError
        | FailureKind::ConnectRefused
        | FailureKind::ConnectTimeout
        | FailureKind::ConnectUnreachable
        | FailureKind::ConnectError
        | FailureKind::UpstreamProxyStatus { .. }
        | FailureKind::UpstreamProxyClosed
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::UpstreamProxyUnreachable => tunnel_line("tunnel_eof", &[]),
        // The connection goes on (a DNS answer that breaks the configuration's expectation), or
        // the client never got as far as a registry request: nothing to predict.
        FailureKind::DnsUnexpectedAnswer
        | FailureKind::MalformedRequest
        | FailureKind::HeadTooLarge { .. }
        | FailureKind::RequestTimeout
        | FailureKind::ClientNotAllowed
        | FailureKind::ClientConnectionLimit { .. }
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::ProxyAuthRequired { .. }
        | FailureKind::DestinationNotAllowed { .. }
        | FailureKind::ResourceLimit { .. }
        | FailureKind::TransferStalled { .. }
        | FailureKind::UpstreamClosedBeforeHeaders { .. }
        | FailureKind::TlsSniMismatch { .. }
        | FailureKind::InterceptNameNotPermitted { .. }
        | FailureKind::TlsInsteadOfHttp => None,
    }
}

/// regdoc answered the client's request inside TLS itself (the server broke, or did not answer
/// in time). A login's `GET /v2/` reports the status with Go's text; other requests report a
/// status outside 4xx with the status line's own text (HTTP/2 has none: Go's then).
fn own_http_reply(ev: &FailureEvent, op: Operation, status: u16, reason: &str) -> Option<Symptom> {
    let ping = ev.http.as_ref().is_none_or(|e| e.path_class == "ping");
    let status_s = status.to_string();
    if ping {
        // The first request of every operation is the ping, and a pull's ping accepts any
        // status: only a login prints this line.
        let line = with_prefix(
            true,
            render(
                "login_status",
                &[
                    ("url", &api_url(&ev.host, ev.port)),
                    ("status", &status_s),
                    ("status_text", distribution::status_text(status)),
                ],
            ),
        );
        return if op == Operation::Login {
            known("login_status", line)
        } else {
            expected("login_status", line)
        };
    }
    let text = Some(redact(reason))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| distribution::status_text(status).to_string());
    let line = with_prefix(
        prefixed(op, ev.http.as_ref()),
        render(
            "unexpected_status",
            &[("status", &status_s), ("reason", &text)],
        ),
    );
    if op == Operation::Unknown {
        expected("unexpected_status", line)
    } else {
        known("unexpected_status", line)
    }
}

/// Go's x509 text for a certificate problem: the part every Go version prints. Go 1.20 and
/// later put `tls: failed to verify certificate: ` before it (Docker Engine 23 and later);
/// dockerd 20.10 (Go 1.19) does not; a line that keeps to the common part is true of both.
fn x509_text(problem: CertProblem) -> &'static str {
    match problem {
        CertProblem::UnknownIssuer => "x509: certificate signed by unknown authority",
        CertProblem::Expired | CertProblem::NotYetValid => {
            "x509: certificate has expired or is not yet valid"
        }
        CertProblem::NameMismatch => "x509: certificate is valid for",
        CertProblem::Other => "x509: ",
    }
}

/// The name a pull error gives the image: the registry as the client wrote it (port included
/// unless 443) and the repository.
fn image_name(ev: &FailureEvent, repository: &str) -> String {
    if ev.port == 443 {
        format!("{}/{repository}", ev.host)
    } else {
        format!(
            "{}/{repository}",
            crate::config::join_host_port(&ev.host, ev.port)
        )
    }
}

/// The image as a reference names it: `name` with the exchange's tag after a colon, or its
/// digest after an at sign.
fn image_reference(name: &str, ex: &HttpExchange) -> String {
    match ex.reference.as_deref() {
        Some(r) if r.contains(':') => format!("{name}@{r}"),
        Some(r) => format!("{name}:{r}"),
        None => name.to_string(),
    }
}

/// The `error` of a bearer challenge that refused a registry request (not the token service's,
/// whose refusals containerd words as a failed token fetch).
fn bearer_error(ex: &HttpExchange) -> Option<&str> {
    if ex.status != 401 || matches!(ex.path_class.as_str(), "token" | "exchange") {
        return None;
    }
    let c = ex.www_authenticate.as_ref().filter(|c| c.is_bearer())?;
    c.error.as_deref().filter(|e| !e.is_empty())
}

/// containerd 1.6's words for the registry's answers it frames itself, read from its resolver
/// and checked against `ctr images pull` end to end. `None` where containerd prints the
/// registry's own words, or where its line is not checked yet: the Docker wording then stands.
fn containerd_symptom(ev: &FailureEvent, ex: &HttpExchange, op: Operation) -> Option<Symptom> {
    let status = ex.status.to_string();
    let status_text = distribution::status_text(ex.status);
    // A bearer token refused with an error in the challenge: containerd's authorizer retries
    // the request once, and the second refusal ends the operation with the challenge's error
    // (its `invalidAuthorization`), whatever the path.
    if let Some(error) = bearer_error(ex) {
        let line = render("containerd_bearer_error", &[("error", error)]);
        // Checked with `ctr images push`; a pull's resolver may frame it in words of its own
        // (containerd 1.7 adds "pull access denied, …"), so there it is only expected.
        return if op == Operation::Push {
            known("containerd_bearer_error", line)
        } else {
            expected("containerd_bearer_error", line)
        };
    }
    match ex.path_class.as_str() {
        // The tag's resolution (`HEAD /v2/NAME/manifests/TAG`) answered 4xx other than 404: the
        // resolver keeps that status as its error, with the host as the reference names it.
        "manifest"
            if op == Operation::Pull
                && matches!(ex.method.as_str(), "HEAD" | "GET")
                && ex.status >= 400
                && ex.status != 404 =>
        {
            let host = crate::config::authority(&ev.host, ev.port, 443);
            let reference = ex.reference.as_deref()?;
            known(
                "containerd_resolve_status",
                render(
                    "containerd_resolve_status",
                    &[
                        ("host", &host),
                        ("reference", reference),
                        ("status", &status),
                        ("status_text", status_text),
                    ],
                ),
            )
        }
        // The tag's resolution answered 404: containerd tries its next host, and with none left
        // says the reference was not found (its `ErrNotFound`), naming it as the pull did.
        "manifest"
            if op == Operation::Pull
                && matches!(ex.method.as_str(), "HEAD" | "GET")
                && ex.status == 404 =>
        {
            // Without the tag the reference cannot be written as containerd writes it.
            ex.reference.as_ref()?;
            let name = image_name(ev, ex.repository.as_deref()?);
            known(
                "containerd_not_found",
                render(
                    "containerd_not_found",
                    &[("image", &image_reference(&name, ex))],
                ),
            )
        }
        // The GET with Basic credentials containerd 1.6 retries with after its OAuth2 form
        // (POST) was refused with 400, 401, 404 or 405 (that refusal is no failure, see
        // `diagnose::containerd_retries_token`), or a POST refused otherwise: containerd prints
        // the status alone, under these words, not the service's error body.
        "token" | "exchange"
            if ex.status >= 400
                && (ex.method == "POST"
                    || (ex.method == "GET"
                        && ex.auth.as_ref().is_some_and(|a| a.scheme == "basic"))) =>
        {
            known(
                "containerd_oauth_token_status",
                render(
                    "containerd_oauth_token_status",
                    &[("status", &status), ("status_text", status_text)],
                ),
            )
        }
        // A GET without credentials: containerd had none for this registry and asked for an
        // anonymous token, again printing the status alone.
        "token" if ex.status >= 400 && ex.method == "GET" && ex.auth.is_none() => known(
            "containerd_anonymous_token_status",
            render(
                "containerd_anonymous_token_status",
                &[("status", &status), ("status_text", status_text)],
            ),
        ),
        _ => None,
    }
}

fn http_symptom(ev: &FailureEvent, ex: &HttpExchange, sit: &Situation) -> Option<Symptom> {
    let op = sit.operation.unwrap_or(Operation::Unknown);
    if ex.from_containerd() {
        if let Some(s) = containerd_symptom(ev, ex, op) {
            return Some(s);
        }
    }
    let prefix = prefixed(op, Some(ex));
    let err = distribution::client_error(ex);
    let basis_of = |sure: bool| {
        if sure && err.exact {
            Basis::Known
        } else {
            Basis::Expected
        }
    };
    let status = ex.status.to_string();
    let status_text = distribution::status_text(ex.status);
    let symptom = |format: &'static str, text: String, sure: bool| {
        Some(Symptom {
            text,
            basis: basis_of(sure),
            format,
        })
    };
    match ex.path_class.as_str() {
        "ping" => {
            // The ping of a pull accepts any status; only a login reads it (with Go's text for
            // the status, not the server's reason phrase).
            let line = render(
                "login_status",
                &[
                    ("url", &api_url(&ev.host, ev.port)),
                    ("status", &status),
                    ("status_text", status_text),
                ],
            );
            // The line does not depend on the body.
            Some(Symptom {
                text: with_prefix(true, line),
                basis: if op == Operation::Login {
                    Basis::Known
                } else {
                    Basis::Expected
                },
                format: "login_status",
            })
        }
        "token" | "exchange" if op == Operation::Pull || op == Operation::Push => {
            // The token is fetched inside the manifest request, whose URL (with a tag regdoc
            // has not seen yet) frames the error: `Head "…/manifests/TAG": <error>` from
            // Docker, `unable to retrieve auth token: …: <error>` from skopeo. The error is the
            // part every client prints, and regdoc saw all of it.
            symptom("pull_token_refused", err.first(), true)
        }
        "token" | "exchange" => {
            // A login fetches its token inside its authenticated `GET /v2/`, and the error
            // names that URL: the registry's, which regdoc learnt from its challenge.
            let (url, sure) = match (&sit.registry_target, ex.service.as_deref()) {
                (Some(t), _) => (url_of_target(t), true),
                (None, Some(s)) if !s.is_empty() => (format!("https://{}/v2/", redact(s)), false),
                _ => (api_url(&ev.host, ev.port), false),
            };
            let line = render(
                "login_token_refused",
                &[("url", &url), ("error", &err.all())],
            );
            symptom(
                "login_token_refused",
                with_prefix(true, line),
                sure && op == Operation::Login,
            )
        }
        // distribution's client (dockerd's) resolves a tag with HEAD and, refused, asks again
        // with GET to read the error's details: that GET's error is the one printed (judged in
        // its own record), never the HEAD's. containerd, which prints the HEAD's status, was
        // answered above.
        "manifest" if op == Operation::Pull && ex.method == "HEAD" && ex.status >= 400 => None,
        "manifest" if op == Operation::Pull => {
            // A pull keeps the first error only; three registry codes get their own words, and
            // only when that error is a full one (a bare code prints as it is).
            let name = image_name(ev, ex.repository.as_deref().unwrap_or(""));
            let image = image_reference(&name, ex);
            let first = err.first();
            let (format, line) = match err.first_full().map(|e| e.code) {
                Some("DENIED") => (
                    "pull_access_denied",
                    render("pull_access_denied", &[("name", &name), ("error", &first)]),
                ),
                Some("MANIFEST_UNKNOWN") => (
                    "pull_manifest_unknown",
                    render(
                        "pull_manifest_unknown",
                        &[("image", &image), ("error", &first)],
                    ),
                ),
                Some("NAME_UNKNOWN") => (
                    "pull_repository_unknown",
                    render(
                        "pull_repository_unknown",
                        &[("name", &name), ("error", &first)],
                    ),
                ),
                _ if err.status_line.is_some() => ("unexpected_status", first),
                _ => ("registry_error", first),
            };
            symptom(format, with_prefix(prefix, line), true)
        }
        _ => {
            // A layer upload keeps the first error; a manifest upload, and anything else, all.
            let text = if op == Operation::Pull || ex.path_class == "upload" {
                err.first()
            } else {
                err.all()
            };
            let format = if err.status_line.is_some() {
                "unexpected_status"
            } else {
                "registry_error"
            };
            symptom(format, with_prefix(prefix, text), op != Operation::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::classify;
    use crate::http::challenge::Challenge;
    use crate::http::registry_error::RegistryError;
    use crate::observe::Phase;

    fn event(host: &str, port: u16, kind: FailureKind) -> FailureEvent {
        FailureEvent {
            endpoint: classify(host, &[]),
            ..FailureEvent::sample(host, port, Phase::Tls, kind)
        }
    }

    fn http(host: &str, port: u16, ex: HttpExchange) -> FailureEvent {
        let mut ev = event(host, port, FailureKind::HttpStatus { status: ex.status });
        ev.phase = Phase::Http;
        ev.http = Some(ex);
        ev
    }

    fn at(op: Operation) -> Situation {
        Situation {
            operation: Some(op),
            ..Situation::default()
        }
    }

    const REG: &str = "myregistry.azurecr.io";

    #[test]
    fn urls_keep_a_port_other_than_443() {
        assert_eq!(api_url(REG, 443), "https://myregistry.azurecr.io/v2/");
        assert_eq!(api_url(REG, 5443), "https://myregistry.azurecr.io:5443/v2/");
        assert_eq!(api_url("2001:db8::1", 443), "https://[2001:db8::1]/v2/");
        assert_eq!(
            api_url("2001:db8::1", 5000),
            "https://[2001:db8::1]:5000/v2/"
        );
    }

    #[test]
    fn a_refused_connect_is_known_and_names_the_port() {
        let ev = event(REG, 5443, FailureKind::DnsNxDomain);
        let s = client_symptom(
            &ev,
            Some(Reply::Connect("regdoc registry_name: x")),
            &Situation::default(),
        )
        .unwrap();
        assert_eq!(s.basis, Basis::Known);
        assert_eq!(
            s.text,
            "Get \"https://myregistry.azurecr.io:5443/v2/\": regdoc registry_name: x"
        );
    }

    #[test]
    fn containerd_before_any_exchange_is_worded_without_dockers_url() {
        let containerd = Situation {
            client: ClientKind::Containerd,
            ..Situation::default()
        };
        // ctr: `failed to do request: Head "…/manifests/TAG": <reason>`: the reason is the
        // part regdoc knows, and it is known.
        let ev = event(REG, 443, FailureKind::DnsNxDomain);
        let s = client_symptom(
            &ev,
            Some(Reply::Connect("regdoc registry_name: x")),
            &containerd,
        )
        .unwrap();
        assert_eq!(
            (s.text.as_str(), s.basis, s.format),
            (
                "regdoc registry_name: x",
                Basis::Known,
                "containerd_request_error"
            )
        );
        // A tunnel that ended before the ServerHello: Go's error, as ctr prints it.
        let ev = event(REG, 443, FailureKind::TlsServerClosed);
        let s = client_symptom(&ev, None, &containerd).unwrap();
        assert_eq!((s.text.as_str(), s.basis), ("EOF", Basis::Known));
        // A server that does not speak TLS: Go's words, not checked with ctr, only expected.
        let ev = event(REG, 443, FailureKind::TlsNotTls);
        let s = client_symptom(&ev, None, &containerd).unwrap();
        assert_eq!(s.basis, Basis::Expected, "{}", s.text);
        // Lines without Docker's framing are the same for both clients.
        let ev = event(
            REG,
            443,
            FailureKind::TlsClientRejected {
                detail: "bad certificate".into(),
            },
        );
        let s = client_symptom(&ev, None, &containerd).unwrap();
        assert_eq!(
            (s.text.as_str(), s.format),
            ("x509: certificate signed by unknown authority", "x509")
        );
        // An exchange regdoc read names its client: Docker's words for Docker's request.
        let ex = HttpExchange {
            method: "GET".into(),
            path_class: "ping".into(),
            status: 401,
            user_agent: Some("docker/20.10.24".into()),
            ..Default::default()
        };
        let ev = http(REG, 443, ex);
        let login = Situation {
            operation: Some(Operation::Login),
            client: ClientKind::Containerd,
            ..Situation::default()
        };
        let s = client_symptom(&ev, None, &login).unwrap();
        assert!(s.text.starts_with(DAEMON_PREFIX), "{}", s.text);
    }

    #[test]
    fn a_silent_server_the_client_gave_up_on_is_its_handshake_timeout() {
        let mut ev = event(REG, 5443, FailureKind::TlsServerSilent);
        // The fact, not the words: a sentence that merely mentions giving up changes nothing.
        ev.error = format!(
            "server did not answer; {} after 10001 ms",
            crate::observe::CLIENT_GAVE_UP
        );
        let s = client_symptom(&ev, None, &Situation::default()).unwrap();
        assert!(s.text.ends_with("\": EOF"), "{}", s.text);
        ev.client_gave_up = true;
        let s = client_symptom(&ev, None, &Situation::default()).unwrap();
        assert_eq!(s.basis, Basis::Known);
        assert_eq!(
            s.text,
            "Get \"https://myregistry.azurecr.io:5443/v2/\": net/http: TLS handshake timeout"
        );
    }

    #[test]
    fn inside_a_data_tunnel_the_words_are_only_expected() {
        let ev = event(
            "myregistry.eastus.data.azurecr.io",
            443,
            FailureKind::TlsServerClosed,
        );
        let s = client_symptom(&ev, None, &Situation::default()).unwrap();
        assert_eq!(s.basis, Basis::Expected);
    }

    #[test]
    fn a_dns_warning_predicts_nothing() {
        // The connection goes on: what the client prints depends on what the endpoint answers.
        let ev = event(REG, 443, FailureKind::DnsUnexpectedAnswer);
        assert_eq!(client_symptom(&ev, None, &Situation::default()), None);
    }

    #[test]
    fn the_login_status_is_known_only_for_a_login() {
        let ex = HttpExchange {
            method: "GET".into(),
            path_class: "ping".into(),
            status: 403,
            ..Default::default()
        };
        let ev = http(REG, 5443, ex);
        let line = "Error response from daemon: login attempt to https://myregistry.azurecr.io:5443/v2/ failed with status: 403 Forbidden";
        let s = client_symptom(&ev, None, &at(Operation::Login)).unwrap();
        assert_eq!((s.text.as_str(), s.basis), (line, Basis::Known));
        let s = client_symptom(&ev, None, &at(Operation::Unknown)).unwrap();
        assert_eq!((s.text.as_str(), s.basis), (line, Basis::Expected));
    }

    #[test]
    fn a_push_denied_by_scope_prints_the_challenge_error_alone() {
        let ex = HttpExchange {
            method: "POST".into(),
            path_class: "upload".into(),
            status: 401,
            www_authenticate: Some(Challenge {
                scheme: "Bearer".into(),
                realm: Some("https://auth.example/token".into()),
                service: Some(REG.into()),
                scope: Some("repository:e2e/busybox:pull,push".into()),
                error: Some("insufficient_scope".into()),
                error_description: None,
            }),
            registry_errors: vec![RegistryError {
                code: "UNAUTHORIZED".into(),
                message: "authentication required".into(),
                has_detail: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let ev = http(REG, 443, ex);
        let op = operation::of_exchange(ev.http.as_ref().unwrap(), false);
        let s = client_symptom(&ev, None, &at(op)).unwrap();
        assert_eq!(s.basis, Basis::Known);
        assert_eq!(s.text, "denied: requested access to the resource is denied");
        // A manifest upload keeps every error.
        let mut m = ev.clone();
        if let Some(ex) = m.http.as_mut() {
            ex.method = "PUT".into();
            ex.path_class = "manifest".into();
        }
        let s = client_symptom(&m, None, &at(Operation::Push)).unwrap();
        assert_eq!(
            s.text,
            "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required"
        );
    }

    #[test]
    fn a_login_token_refusal_names_the_registry_that_challenged() {
        let ex = HttpExchange {
            method: "GET".into(),
            path_class: "token".into(),
            status: 401,
            service: Some(REG.into()),
            registry_errors: vec![RegistryError {
                code: "UNAUTHORIZED".into(),
                message: "authentication required, visit https://aka.ms/acr/authorization for more information.".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ev = http("auth.example", 443, ex);
        let sit = Situation {
            operation: Some(Operation::Login),
            registry_target: Some(format!("{REG}:5443")),
            ..Situation::default()
        };
        let s = client_symptom(&ev, None, &sit).unwrap();
        assert_eq!(s.basis, Basis::Known);
        assert_eq!(
            s.text,
            "Error response from daemon: Get \"https://myregistry.azurecr.io:5443/v2/\": unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information."
        );
    }

    #[test]
    fn an_own_502_inside_interception_is_an_unexpected_status_for_a_pull() {
        let mut ev = event(
            REG,
            443,
            FailureKind::UpstreamClosedBeforeHeaders {
                how: crate::observe::EarlyClose::Closed,
            },
        );
        ev.http = Some(HttpExchange {
            method: "HEAD".into(),
            path_class: "manifest".into(),
            ..Default::default()
        });
        let s = client_symptom(
            &ev,
            Some(Reply::Http {
                status: 502,
                reason: "regdoc registry_error: closed",
            }),
            &at(Operation::Pull),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "Error response from daemon: received unexpected HTTP status: 502 regdoc registry_error: closed"
        );
    }

    /// containerd's `HEAD` of the tag `e2e/busybox:1`, refused with distribution's 401.
    fn containerd_manifest_refused() -> HttpExchange {
        HttpExchange {
            method: "HEAD".into(),
            path_class: "manifest".into(),
            status: 401,
            repository: Some("e2e/busybox".into()),
            reference: Some("1".into()),
            user_agent: Some("containerd/1.6.20~ds1".into()),
            registry_errors: vec![RegistryError {
                code: "UNAUTHORIZED".into(),
                message: "authentication required".into(),
                has_detail: true,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn containerd_prints_a_bearer_challenges_error() {
        // A push with a token that grants pull only: the manifest's PUT is refused with the
        // challenge's `insufficient_scope`, which containerd prints instead of the status.
        let put = HttpExchange {
            method: "PUT".into(),
            reference: Some("pushed".into()),
            www_authenticate: Some(Challenge {
                scheme: "Bearer".into(),
                error: Some("insufficient_scope".into()),
                ..Default::default()
            }),
            ..containerd_manifest_refused()
        };
        let s = client_symptom(&http(REG, 443, put.clone()), None, &at(Operation::Push)).unwrap();
        assert_eq!(
            (s.text.as_str(), s.basis),
            (
                "server message: insufficient_scope: authorization failed",
                Basis::Known
            )
        );
        // The same refusal of a pull's manifest lookup: the same words, only expected (no
        // scenario checks a pull refused this way).
        let head = HttpExchange {
            method: "HEAD".into(),
            ..put.clone()
        };
        let s = client_symptom(&http(REG, 443, head), None, &at(Operation::Pull)).unwrap();
        assert_eq!(
            (s.text.as_str(), s.basis),
            (
                "server message: insufficient_scope: authorization failed",
                Basis::Expected
            )
        );
        // containerd reads the error of a bearer challenge only: a Basic one keeps the status
        // line.
        let basic = HttpExchange {
            www_authenticate: Some(Challenge {
                scheme: "Basic".into(),
                error: Some("insufficient_scope".into()),
                ..Default::default()
            }),
            method: "HEAD".into(),
            ..put
        };
        let s = client_symptom(&http(REG, 443, basic), None, &at(Operation::Pull)).unwrap();
        assert!(s.text.starts_with("pulling from host "), "{}", s.text);
    }

    #[test]
    fn containerd_frames_a_refused_resolution_and_token_its_own_way() {
        let manifest = containerd_manifest_refused();
        let s = client_symptom(
            &http(REG, 5443, manifest.clone()),
            None,
            &at(Operation::Pull),
        )
        .unwrap();
        assert_eq!(s.basis, Basis::Known);
        assert_eq!(
            s.text,
            "pulling from host myregistry.azurecr.io:5443 failed with status code [manifests 1]: 401 Unauthorized"
        );
        // A tag that does not exist: the reference, as the pull named it, was not found.
        let missing = HttpExchange {
            status: 404,
            registry_errors: Vec::new(),
            ..manifest.clone()
        };
        let s = client_symptom(&http(REG, 5443, missing), None, &at(Operation::Pull)).unwrap();
        assert_eq!(
            (s.text.as_str(), s.basis),
            (
                "myregistry.azurecr.io:5443/e2e/busybox:1: not found",
                Basis::Known
            )
        );
        // Docker's words for the same answer (to the GET it asks again with) stay Docker's.
        let docker = HttpExchange {
            method: "GET".into(),
            user_agent: Some("docker/20.10.24+dfsg1 go/go1.19.8".into()),
            ..manifest
        };
        let s = client_symptom(&http(REG, 443, docker), None, &at(Operation::Pull)).unwrap();
        assert!(
            s.text.starts_with("Error response from daemon: "),
            "{}",
            s.text
        );

        let token = HttpExchange {
            method: "POST".into(),
            path_class: "token".into(),
            status: 401,
            user_agent: Some("containerd/1.6.20~ds1".into()),
            ..Default::default()
        };
        let s = client_symptom(
            &http("auth.example", 443, token.clone()),
            None,
            &at(Operation::Pull),
        )
        .unwrap();
        assert_eq!(
            (s.text.as_str(), s.basis),
            (
                "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized",
                Basis::Known
            )
        );
        // The GET with Basic credentials it retries with gets the same words; an anonymous GET
        // keeps the registry's.
        let basic = HttpExchange {
            method: "GET".into(),
            auth: Some(crate::http::credentials::CredentialFacts {
                scheme: "basic".into(),
                ..Default::default()
            }),
            ..token.clone()
        };
        let s = client_symptom(
            &http("auth.example", 443, basic),
            None,
            &at(Operation::Pull),
        )
        .unwrap();
        assert!(s.text.starts_with("failed to authorize: "), "{}", s.text);
        // The refused POST itself is no failure: containerd retries with that GET.
        assert!(crate::diagnose::containerd_retries_token(&token));
        let anonymous = HttpExchange {
            method: "GET".into(),
            ..token
        };
        assert!(!crate::diagnose::containerd_retries_token(&anonymous));
        // Without credentials: an anonymous token, refused.
        let s = client_symptom(
            &http("auth.example", 443, anonymous),
            None,
            &at(Operation::Pull),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized"
        );
    }

    #[test]
    fn every_format_row_is_rendered_somewhere() {
        // The table is the contract with the README: a row no code path uses is stale.
        let src = include_str!("mod.rs");
        for f in formats::FORMATS {
            assert!(
                src.matches(&format!("\"{}\"", f.id)).count() >= 1,
                "format {} is never rendered",
                f.id
            );
        }
    }
}
