//! The Docker client's message formats, one row per operation and situation.
//!
//! Each row is what Docker Engine 20.10 (Go 1.19, with its vendored distribution client) and the
//! docker CLI print, read from their sources and checked against the real daemon by the
//! end-to-end test the row names. `{…}` are filled by [`render`]. The rows are data so that the
//! README's table and the code cannot drift apart: `cargo test` checks that every row is used.

/// One message format.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Stable id, used by the renderer and the tests.
    pub id: &'static str,
    /// The client operations that print it.
    pub operations: &'static str,
    /// When.
    pub situation: &'static str,
    /// The line, with `{url}`, `{reason}`, `{status}`, `{status_text}`, `{alert}`, `{x509}`,
    /// `{error}`, `{name}` (registry and repository), `{image}` (name with tag or digest)
    /// placeholders.
    pub template: &'static str,
    /// The end-to-end test (tests/e2e_docker.rs, tests/e2e_containerd.rs for containerd's rows)
    /// that checks the row against the real client,
    /// or `""` when no scenario produces it yet.
    pub checked_by: &'static str,
}

/// The prefix the CLI puts before an error the daemon's API call returned (login, and a pull
/// that fails before it streams progress). Streams (push, the layers of a pull) print the
/// message alone.
pub const DAEMON_PREFIX: &str = "Error response from daemon: ";

pub static FORMATS: &[Format] = &[
    Format {
        id: "proxy_refused",
        operations: "login, pull, push",
        situation: "regdoc refused the CONNECT (Go prints the status line's text)",
        template: "Get \"{url}\": {reason}",
        checked_by: "registry_name_does_not_resolve",
    },
    Format {
        id: "proxy_refused_data",
        operations: "pull",
        situation: "regdoc refused the CONNECT to a data endpoint or blob storage (dockerd frames it as `error pulling image configuration: download failed after attempts=N: …` or a layer's error)",
        template: "{reason}",
        checked_by: "data_endpoint_unreachable_rest_works",
    },
    Format {
        id: "tunnel_eof",
        operations: "login, pull, push",
        situation: "the tunnel ended before the server's TLS answer (regdoc's deadline, or the server closed or reset it)",
        template: "Get \"{url}\": EOF",
        checked_by: "sni_filter_resets_client_hello",
    },
    Format {
        id: "tls_handshake_timeout",
        operations: "login, pull, push",
        situation: "the server accepted TCP and never answered the ClientHello; the daemon's 10 s TLS handshake timeout fired",
        template: "Get \"{url}\": net/http: TLS handshake timeout",
        checked_by: "registry_accepts_tcp_and_never_answers",
    },
    Format {
        id: "tls_not_tls",
        operations: "login, pull, push",
        situation: "the server answered the ClientHello with bytes that are not TLS",
        template: "Get \"{url}\": tls: first record does not look like a TLS handshake",
        checked_by: "",
    },
    Format {
        id: "tls_remote_alert",
        operations: "login, pull, push",
        situation: "the server answered the ClientHello with a TLS alert",
        template: "Get \"{url}\": remote error: tls: {alert}",
        checked_by: "",
    },
    Format {
        id: "x509",
        operations: "login, pull, push",
        situation: "the client refused the certificate it was shown; the line is `Get \"URL\": ` and the x509 text, which Go 1.20 and later precede with `tls: failed to verify certificate: ` (dockerd 20.10 is Go 1.19), so regdoc writes the part both print",
        template: "{x509}",
        checked_by: "tls_inspection_upstream_mitmproxy",
    },
    Format {
        id: "proxyconnect_tls",
        operations: "login, pull, push",
        situation: "HTTPS_PROXY says https:// and regdoc answered the ClientHello in plain HTTP",
        template: "Get \"{url}\": proxyconnect tcp: tls: first record does not look like a TLS handshake",
        checked_by: "daemon_proxy_url_with_https_scheme",
    },
    Format {
        id: "proxyconnect_eof",
        operations: "login, pull, push",
        situation: "HTTPS_PROXY says https:// and regdoc closed the connection",
        template: "Get \"{url}\": proxyconnect tcp: EOF",
        checked_by: "",
    },
    Format {
        id: "login_status",
        operations: "login",
        situation: "the authenticated `GET /v2/` of a login answered other than 200 (Go's canonical status text, not the server's)",
        template: "login attempt to {url} failed with status: {status} {status_text}",
        checked_by: "login_token_rejected_by_registry",
    },
    Format {
        id: "login_token_refused",
        operations: "login",
        situation: "the token service refused the credentials; the error is wrapped in the registry's /v2/ URL",
        template: "Get \"{url}\": {error}",
        checked_by: "wrong_password_token_server",
    },
    Format {
        id: "pull_token_refused",
        operations: "pull, run",
        situation: "the token service refused; Docker frames the error with the manifest request the token was fetched for (`Head \"https://HOST/v2/NAME/manifests/TAG\": `, a tag regdoc has not seen), skopeo with `unable to retrieve auth token: invalid username/password: `, so regdoc writes the error both print",
        template: "{error}",
        checked_by: "skopeo_wrong_password_token_server",
    },
    Format {
        id: "pull_access_denied",
        operations: "pull, run",
        situation: "the manifest request was refused with DENIED (or a token without the pull scope: `insufficient_scope`)",
        template: "pull access denied for {name}, repository does not exist or may require 'docker login': {error}",
        checked_by: "",
    },
    Format {
        id: "pull_manifest_unknown",
        operations: "pull, run",
        situation: "the tag or digest does not exist (MANIFEST_UNKNOWN)",
        template: "manifest for {image} not found: {error}",
        checked_by: "",
    },
    Format {
        id: "pull_repository_unknown",
        operations: "pull, run",
        situation: "the repository does not exist (NAME_UNKNOWN)",
        template: "repository {name} not found: {error}",
        checked_by: "",
    },
    Format {
        id: "registry_error",
        operations: "pull, push",
        situation: "any other error reply of the registry, as the distribution client writes it (`code: message`; several errors as `errors:` and one per line)",
        template: "{error}",
        checked_by: "push_without_push_rights",
    },
    Format {
        id: "unexpected_status",
        operations: "pull, push",
        situation: "a 5xx (or another status outside 4xx), with the status line's text",
        template: "received unexpected HTTP status: {status} {reason}",
        checked_by: "",
    },
    Format {
        id: "awaiting_headers",
        operations: "login",
        situation: "no response headers within the login's 15 s client timeout",
        template: "Get \"{url}\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)",
        checked_by: "",
    },
    Format {
        id: "containerd_resolve_status",
        operations: "pull (containerd 1.6: ctr, the CRI plugin)",
        situation: "containerd's resolver got a 4xx other than 404 for the tag's manifest (its `User-Agent` is `containerd/…`); `ctr` prints it after `ctr: failed to resolve reference \"REF\": `",
        template: "pulling from host {host} failed with status code [manifests {reference}]: {status} {status_text}",
        checked_by: "containerd_wrong_password_htpasswd",
    },
    Format {
        id: "containerd_oauth_token_status",
        operations: "pull (containerd 1.6)",
        situation: "the token service refused the GET with Basic credentials containerd retries with after its OAuth2 form (POST) was refused (that refusal is no failure); the service's error body is not printed",
        template: "failed to authorize: failed to fetch oauth token: unexpected status: {status} {status_text}",
        checked_by: "containerd_wrong_password_token_server",
    },
    Format {
        id: "containerd_anonymous_token_status",
        operations: "pull (containerd 1.6)",
        situation: "containerd had no credentials for the registry and the token service refused its anonymous GET; the service's error body is not printed",
        template: "failed to authorize: failed to fetch anonymous token: unexpected status: {status} {status_text}",
        checked_by: "containerd_anonymous_pull_of_a_private_registry",
    },
    Format {
        id: "containerd_not_found",
        operations: "pull (containerd 1.6)",
        situation: "the tag's manifest answered 404 and containerd had no other host to try; `ctr` prints it after `ctr: failed to resolve reference \"REF\": `",
        template: "{image}: not found",
        checked_by: "containerd_tag_not_found",
    },
    Format {
        id: "containerd_bearer_error",
        operations: "push (containerd 1.6; a pull's resolution: expected only)",
        situation: "the registry refused a request made with a bearer token, and its challenge names an error (`error=\"insufficient_scope\"`: the token does not grant the action); containerd asks once more and then prints the challenge's error, not the status or the body; `ctr images push` prints it after `ctr: failed commit on ref \"manifest-sha256:…\": ` (a refused manifest) or `ctr: ` (a refused blob)",
        template: "server message: {error}: authorization failed",
        checked_by: "containerd_push_without_push_rights",
    },
    Format {
        id: "containerd_request_error",
        operations: "pull (containerd 1.6, with `diagnosis.client = \"containerd\"`)",
        situation: "a request that failed before regdoc could read it (a refused CONNECT, a tunnel that ended): containerd prints `failed to do request: Head \"https://HOST/v2/NAME/manifests/TAG\": ERROR` after `ctr: failed to resolve reference \"REF\": `; NAME and TAG never cross regdoc in the clear, so the line is ERROR (regdoc's reason phrase for a refused CONNECT; `EOF` for a tunnel that ended before the server's TLS answer and `net/http: TLS handshake timeout`, checked by `containerd_sni_filter_resets_client_hello` and `containerd_registry_accepts_tcp_and_never_answers`)",
        template: "{error}",
        checked_by: "containerd_registry_name_does_not_resolve",
    },
];

/// The row `id`. Panics on an unknown id: ids are literals of this module's callers, checked by
/// the unit tests.
pub fn format(id: &str) -> &'static Format {
    FORMATS
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no client message format {id:?}"))
}

/// Fill the row `id` with `vars` (`(name, value)`; placeholders without a value stay as they are).
pub fn render(id: &str, vars: &[(&str, &str)]) -> String {
    let mut out = format(id).template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_templates_one_line() {
        for (i, f) in FORMATS.iter().enumerate() {
            assert!(
                FORMATS[..i].iter().all(|g| g.id != f.id),
                "duplicate {}",
                f.id
            );
            assert!(!f.template.contains('\n'), "{}", f.id);
        }
    }

    #[test]
    fn render_fills_placeholders() {
        assert_eq!(
            render(
                "login_status",
                &[
                    ("url", "https://r.azurecr.io:5443/v2/"),
                    ("status", "403"),
                    ("status_text", "Forbidden")
                ]
            ),
            "login attempt to https://r.azurecr.io:5443/v2/ failed with status: 403 Forbidden"
        );
    }
}
