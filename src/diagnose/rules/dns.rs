//! Rules for name resolution: NXDOMAIN and friends, and answers that contradict the
//! configuration (a private-endpoint registry resolving to a public address).

use super::*;

/// Hints that a registry host name is mistyped, as sentences, from
/// [`crate::endpoint::registry_name_issues`]. Facts about ACR names: lower case, 5 to 50
/// letters and digits, login server `<name>.azurecr.io`.
pub fn name_hints(host: &str) -> Vec<String> {
    let shown = text::cap(&redact(host.trim()), 120);
    let lower = shown.to_ascii_lowercase();
    let acr_name = lower.split('.').next().unwrap_or("").to_string();
    crate::endpoint::registry_name_issues(host)
        .into_iter()
        .map(|issue| match issue {
            "empty" => "the registry host is empty".to_string(),
            "surrounding_whitespace" => format!("{shown:?} has spaces around it"),
            "has_scheme_or_path" => {
                format!("{shown:?} has a scheme or path; give only the login server")
            }
            "upper_case" => {
                format!("{shown:?} has upper-case letters; login servers are lower case")
            }
            "invalid_host_characters" => {
                format!("{shown:?} has characters no host name can contain")
            }
            "missing_azurecr_suffix" => format!(
                "{shown:?} has no domain; use the full login server {lower}.azurecr.io"
            ),
            "data_endpoint_not_login_server" => format!(
                "{shown:?} is a data endpoint; log in to the login server <name>.azurecr.io"
            ),
            "acr_name_invalid_characters" => format!(
                "{acr_name:?} has characters other than letters and digits; ACR registry names are letters and digits only"
            ),
            "acr_name_length" => format!(
                "{acr_name:?} is {} characters; ACR registry names are 5 to 50",
                acr_name.chars().count()
            ),
            "wrong_azurecr_suffix" => {
                format!("{shown:?} looks mistyped; ACR login servers end in .azurecr.io")
            }
            other => format!("name check: {other}"),
        })
        .collect()
}

pub(super) fn describe_answer(host: &str, dns: &DnsAnswer) -> String {
    let mut s = host.to_string();
    if let Some(name) = &dns.name {
        // The search list turned the name asked into another one: say which.
        s.push_str(&format!(" (as {})", text::cap(&redact(name), 120)));
    }
    for cn in dns.cnames.iter().take(8) {
        s.push_str(" -> ");
        // Names come from DNS, which anyone on the path can shape: vet them like server text.
        s.push_str(&text::cap(&redact(cn), 120));
    }
    if !dns.addresses.is_empty() {
        let addrs: Vec<String> = dns
            .addresses
            .iter()
            .take(4)
            .map(|a| a.to_string())
            .collect();
        s.push_str(" -> ");
        s.push_str(&addrs.join(", "));
    }
    format!("answer ({}): {}", dns.source, text::cap(&s, 280))
}

fn via_privatelink(dns: Option<&DnsAnswer>) -> bool {
    dns.is_some_and(|d| d.cnames.iter().any(|c| c.contains(".privatelink.")))
}

/// The private zone record a data endpoint or REST host needs.
fn privatelink_record(host: &str) -> String {
    match host.strip_suffix(".azurecr.io") {
        Some(prefix) => format!("{prefix}.privatelink.azurecr.io"),
        None => host.to_string(),
    }
}

fn rest_context(ctx: &ContextView) -> Option<String> {
    let reg = ctx.registry.as_deref()?;
    match (ctx.rest_ok_age, ctx.rest_ok_any_age) {
        (Some(a), _) => Some(format!(
            "REST endpoint {reg}.azurecr.io worked for this client {} earlier",
            age(a)
        )),
        (None, Some(a)) => Some(format!(
            "REST endpoint {reg}.azurecr.io worked for another client {} earlier",
            age(a)
        )),
        _ => None,
    }
}

/// Evidence naming the exact data host to allow.
fn allow_data_host(t: Target<'_>, ctx: &ContextView) -> String {
    let region = t.endpoint.region.as_deref().or(ctx.region.as_deref());
    match region {
        Some(r) => format!("allow {}:443 (data endpoint, region {r})", t.host),
        None => format!("allow {}:443 (layer storage)", t.host),
    }
}

pub(super) fn data_context_evidence(
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<String> {
    let mut e = vec![allow_data_host(t, ctx)];
    let region = t.endpoint.region.as_deref().or(ctx.region.as_deref());
    let reg = cfg.registry_for(t.host, t.endpoint, ctx.registry.as_deref());
    if let (Some(region), Some(reg)) = (region, reg) {
        if !reg.regions.is_empty() && !reg.regions.iter().any(|r| r.eq_ignore_ascii_case(region)) {
            e.push(format!(
                "region {region} is not among the regions configured for {} ({}): a new replica needs its own firewall rule and DNS record",
                reg.host,
                reg.regions.join(", ")
            ));
        }
    }
    if let Some(r) = rest_context(ctx) {
        e.push(r);
    }
    if let Some(a) = ctx.redirected_age {
        e.push(format!(
            "the registry redirected a client here {} earlier",
            age(a)
        ));
    }
    if !ctx.data_ok.is_empty() {
        e.push(format!(
            "other data hosts of this registry worked: {}",
            ctx.data_ok.join(", ")
        ));
    }
    e
}

fn is_private_registry(t: Target<'_>, ctx: &ContextView, cfg: &RulesConfig) -> bool {
    cfg.registry_for(t.host, t.endpoint, ctx.registry.as_deref())
        .is_some_and(|r| r.private_endpoint || !r.expected_cidrs.is_empty())
}

pub(super) fn dns_failure(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let private = is_private_registry(t, ctx, cfg);
    let privatelink = via_privatelink(ev.dns.as_ref());
    let no_name = matches!(
        ev.kind,
        FailureKind::DnsNxDomain | FailureKind::DnsNoAddresses
    );
    let what = match ev.kind {
        FailureKind::DnsNxDomain => format!("{} does not exist in DNS (NXDOMAIN)", t.host),
        FailureKind::DnsNoAddresses => format!("{} has no address records", t.host),
        FailureKind::DnsTimeout => {
            format!("no DNS answer for {} within {} ms", t.host, ev.elapsed_ms)
        }
        _ => format!("DNS lookup of {} failed: {}", t.host, redact(&ev.error)),
    };
    let mut ev_base = vec![what];
    if let Some(d) = &ev.dns {
        if !d.cnames.is_empty() {
            ev_base.push(describe_answer(t.host, d));
        }
    }
    let mut out = Vec::new();
    if privatelink && no_name {
        let mut e = ev_base.clone();
        e.push(format!(
            "the chain enters the private zone but {} has no A record there",
            privatelink_record(t.host)
        ));
        out.push(find(&c::PRIVATE_ENDPOINT_DNS, High, e));
    }
    if !no_name {
        // The resolver itself failed: not a name problem.
        out.push(find(&c::CLIENT_FIREWALL, Medium, {
            let mut e = ev_base.clone();
            e.push("the resolver did not answer: DNS is blocked or the resolver is down".into());
            e
        }));
        if private {
            out.push(find(&c::PRIVATE_ENDPOINT_DNS, Low, ev_base));
        }
        return out;
    }
    match t.kind() {
        EndpointKind::RegistryRest => {
            let hints = name_hints(t.host);
            let mut e = ev_base.clone();
            e.extend(hints.iter().cloned());
            if let Some(worked) = rest_context(ctx) {
                // The name resolved and answered moments ago: it exists. The resolver or the
                // zone it consults changed, or answers differently for this client.
                let mut p = ev_base.clone();
                p.push(worked.clone());
                let cause = if private {
                    &c::PRIVATE_ENDPOINT_DNS
                } else {
                    &c::CLIENT_FIREWALL
                };
                p.push("the name exists: DNS answers differ between lookups (resolver, private zone or DNS filtering)".into());
                out.push(find(cause, Medium, p));
                out.push(find(&c::REGISTRY_NAME, Low, e));
                return out;
            }
            if private {
                out.push(find(&c::REGISTRY_NAME, Medium, e));
                let mut p = ev_base;
                p.push(format!(
                    "{} is configured with a private endpoint: its private zone may lack the record {}",
                    t.host,
                    privatelink_record(t.host)
                ));
                out.push(find(&c::PRIVATE_ENDPOINT_DNS, Low, p));
            } else {
                let conf = if hints.is_empty() && ev.kind == FailureKind::DnsNoAddresses {
                    Medium
                } else {
                    High
                };
                out.push(find(&c::REGISTRY_NAME, conf, e));
            }
        }
        EndpointKind::DataEndpoint | EndpointKind::BlobStorage => {
            let mut e = ev_base.clone();
            e.extend(data_context_evidence(t, ctx, cfg));
            if private || privatelink {
                e.push(format!(
                    "each data endpoint needs its own record: {} in privatelink.azurecr.io",
                    privatelink_record(t.host)
                ));
                out.push(find(&c::PRIVATE_ENDPOINT_DNS, High, e));
            } else {
                let conf = if ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some() {
                    High
                } else {
                    Medium
                };
                out.push(find(&c::DATA_ENDPOINT_FIREWALL, conf, e));
                out.push(find(
                    &c::PRIVATE_ENDPOINT_DNS,
                    Low,
                    vec![format!(
                        "if this registry has a private endpoint, the record {} is missing",
                        privatelink_record(t.host)
                    )],
                ));
            }
        }
        _ => {
            let mut e = ev_base;
            e.extend(name_hints(t.host));
            out.push(find(&c::REGISTRY_NAME, Medium, e));
        }
    }
    out
}

/// A DNS answer that contradicts the configuration: public where a private endpoint is expected,
/// or outside `expected_cidrs`. Works on successful lookups too.
pub fn resolution(
    t: Target<'_>,
    dns: &DnsAnswer,
    cfg: &RulesConfig,
    learnt_registry: Option<&str>,
) -> Option<Finding> {
    if dns.source == DnsSource::Literal || dns.addresses.is_empty() {
        return None;
    }
    let reg = cfg.registry_for(t.host, t.endpoint, learnt_registry)?;
    let mut e = vec![describe_answer(t.host, dns)];
    e.extend(pinned_sentence(t.host, dns));
    if !reg.expected_cidrs.is_empty() {
        let outside: Vec<String> = dns
            .addresses
            .iter()
            .filter(|a| !reg.expected_cidrs.iter().any(|n| n.contains(*a)))
            .map(|a| a.to_string())
            .collect();
        if outside.is_empty() {
            return None;
        }
        let want: Vec<String> = reg.expected_cidrs.iter().map(|n| n.to_string()).collect();
        e.push(format!(
            "{} is outside the expected networks {}",
            outside.join(", "),
            want.join(", ")
        ));
    } else if reg.private_endpoint {
        let public: Vec<&IpAddr> = dns
            .addresses
            .iter()
            .filter(|a| text::is_public(**a))
            .collect();
        if public.is_empty() {
            return None;
        }
        e.push(format!(
            "{} is a public address but {} is configured with a private endpoint",
            public[0], reg.host
        ));
    } else {
        return None;
    }
    if !via_privatelink(Some(dns)) {
        e.push("the CNAME chain does not pass through privatelink.azurecr.io".into());
    }
    e.push(format!(
        "expected {} to resolve through {}",
        t.host,
        privatelink_record(t.host)
    ));
    Some(find(&c::PRIVATE_ENDPOINT_DNS, High, e))
}

/// Evidence that the addresses a connection failed on were pinned in the hosts file. Such an
/// address does not follow the endpoint: when a private endpoint is recreated or a registry
/// moves, DNS has the new address and the hand-written line still has the old one. Only for
/// failures on the path to that address (connect, TLS, or an answer the configuration
/// contradicts); the cause stays what the other rules say.
pub fn pinned_address(ev: &FailureEvent) -> Option<String> {
    let on_path = matches!(
        ev.kind,
        FailureKind::ConnectRefused
            | FailureKind::ConnectTimeout
            | FailureKind::ConnectUnreachable
            | FailureKind::ConnectError
            | FailureKind::TlsServerSilent
            | FailureKind::TlsServerClosed
            | FailureKind::TlsNotTls
            | FailureKind::TlsAlert { .. }
            | FailureKind::TlsUpstreamCertificate { .. }
            | FailureKind::DnsUnexpectedAnswer
    );
    ev.dns
        .as_ref()
        .filter(|_| on_path)
        .and_then(|d| pinned_sentence(&ev.host, d))
}

/// The sentence of [`pinned_address`], for any answer from the hosts file.
fn pinned_sentence(host: &str, dns: &DnsAnswer) -> Option<String> {
    if dns.source != DnsSource::HostsFile {
        return None;
    }
    let origin = dns.hosts_file.as_ref()?;
    let pinned: Vec<String> = dns
        .addresses
        .iter()
        .zip(&origin.lines)
        .take(4)
        .map(|(addr, line)| format!("{addr} (line {line})"))
        .collect();
    if pinned.is_empty() {
        return None;
    }
    let path = text::cap(&redact(&origin.path), 120);
    Some(format!(
        "{} came from {path}, not DNS: {}; an address pinned by hand goes stale when the endpoint's address changes: compare it with what DNS answers (nslookup skips {path}) and update or remove the line",
        text::cap(&redact(host), 120),
        pinned.join(", ")
    ))
}
