//! Rules for the client's request to regdoc itself: unreadable heads, TLS where HTTP was
//! expected, regdoc's own policy.

use super::*;

pub(super) fn bad_request(ev: &FailureEvent) -> Vec<Finding> {
    let what = match &ev.kind {
        FailureKind::HeadTooLarge { limit } => format!("request head larger than {limit} bytes"),
        FailureKind::RequestTimeout => "request head not finished in time".to_string(),
        _ => "request head is not a valid proxy request".to_string(),
    };
    vec![find(
        &c::BAD_CLIENT_REQUEST,
        High,
        vec![what, format!("client {}", ev.client.ip())],
    )]
}

pub(super) fn proxy_scheme(ev: &FailureEvent) -> Vec<Finding> {
    let evidence = vec![
        "the client opened TLS (a ClientHello) where an HTTP CONNECT request was expected".into(),
        format!(
            "client {} has https:// in its proxy URL; regdoc speaks plain HTTP",
            ev.client.ip()
        ),
    ];
    vec![
        find(&c::PROXY_SCHEME_MISMATCH, High, evidence.clone()),
        find(
            &c::DOCKER_CONFIG,
            Medium,
            vec!["the daemon's proxy setting must be fixed, then the daemon restarted".into()],
        ),
    ]
}

pub(super) fn proxy_policy(ev: &FailureEvent) -> Vec<Finding> {
    let e = match &ev.kind {
        FailureKind::PortNotAllowed { port } => {
            format!("destination port {port} is not in allowed_ports")
        }
        FailureKind::ClientNotAllowed => {
            format!("client {} is not in allowed_clients", ev.client.ip())
        }
        FailureKind::ClientConnectionLimit { limit, open } => {
            return vec![find(
                &c::PROXY_POLICY,
                High,
                vec![
                    format!(
                        "client {} already had {open} connections open to regdoc, the most max_connections_per_client ({limit}) allows",
                        ev.client.ip()
                    ),
                    "the share keeps one client from taking every slot of max_connections".into(),
                ],
            )];
        }
        FailureKind::ProxyAuthRequired { provided: false } => {
            "proxy authentication is required and the client sent none".into()
        }
        FailureKind::ProxyAuthRequired { provided: true } => {
            "the client's proxy credentials were not accepted".into()
        }
        FailureKind::TlsSniMismatch { sni } => {
            return vec![find(
                &c::PROXY_POLICY,
                High,
                vec![
                    format!(
                        "the client asked TLS for {:?} inside a tunnel to {}; regdoc presents certificates only for the tunnel's own host",
                        redact(sni),
                        ev.host
                    ),
                    "a registry client names the host it connected to; another name is a misconfigured client or an attempt to get a certificate for a foreign name".into(),
                ],
            )];
        }
        FailureKind::InterceptNameNotPermitted { permitted } => {
            return vec![find(
                &c::PROXY_POLICY,
                High,
                vec![
                    format!(
                        "{} is outside the name constraints of regdoc's interception CA (it may vouch for {permitted})",
                        ev.host
                    ),
                    format!(
                        "make a CA that permits it (`regdoc ca init --force --permit {}`) and re-trust it, or add the host to intercept.passthrough",
                        ev.host
                    ),
                ],
            )];
        }
        FailureKind::DestinationNotAllowed { addr, rule } => {
            format!("destination {addr} is refused by {rule}")
        }
        _ => "refused by regdoc policy".into(),
    };
    vec![find(&c::PROXY_POLICY, High, vec![e])]
}

/// regdoc's own descriptors ran out: whatever the destination, nothing was sent.
pub(super) fn resource_limit(ev: &FailureEvent) -> Vec<Finding> {
    let FailureKind::ResourceLimit {
        errno,
        nofile_soft,
        nofile_hard,
    } = &ev.kind
    else {
        return Vec::new();
    };
    let show = |v: &Option<u64>| v.map_or("unknown".to_string(), |n| n.to_string());
    let limit = format!(
        "regdoc's RLIMIT_NOFILE: soft {}, hard {}",
        show(nofile_soft),
        show(nofile_hard)
    );
    let what = if errno == "ENFILE" {
        "the system's file table is full (ENFILE) when regdoc opened a socket"
    } else {
        "regdoc reached its own open-file limit (EMFILE) when it opened a socket"
    };
    vec![find(
        &c::REGDOC_RESOURCE_LIMIT,
        High,
        vec![
            format!("{what} for {}", ev.target),
            limit,
            "the connection never left the host: not a network fault".into(),
        ],
    )]
}
