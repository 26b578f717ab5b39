//! Rules for HTTP exchanges (interception or plain forwarding): challenges, token endpoints,
//! registry errors, and the healthy flows that must stay silent.

mod unauthorized;

use super::*;
use unauthorized::{resource_unauthorized, token_unauthorized};

fn unix_now(ctx: &ContextView) -> i64 {
    unix(ctx.now)
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The action a registry request needs: `pull`, `push` or `delete`.
fn needed_action(ex: &HttpExchange) -> &'static str {
    match ex.method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "push",
    }
}

fn role_for(action: &str) -> &'static str {
    match action {
        "pull" => "AcrPull",
        "delete" => "AcrDelete",
        _ => "AcrPush",
    }
}

/// Whether the token's `access` grants `action` on `repo`.
fn grants(claims: &Claims, repo: &str, action: &str) -> bool {
    claims.access.as_ref().is_some_and(|acc| {
        acc.iter().any(|a| {
            a.kind == "repository"
                && (a.name == repo || a.name == "*")
                && a.actions.iter().any(|x| x == action || x == "*")
        })
    })
}

fn error_codes(ex: &HttpExchange) -> Vec<String> {
    ex.registry_errors
        .iter()
        .map(|e| e.code.to_ascii_uppercase())
        .collect()
}

fn has_code(ex: &HttpExchange, code: &str) -> bool {
    ex.registry_errors
        .iter()
        .any(|e| e.code.eq_ignore_ascii_case(code))
}

/// All server text of the reply, lower case, for phrase matching.
fn server_text(ex: &HttpExchange) -> String {
    let mut s = String::new();
    for e in &ex.registry_errors {
        s.push_str(&e.message);
        s.push(' ');
    }
    if let Some(b) = &ex.body_text {
        s.push_str(b);
    }
    s.to_ascii_lowercase()
}

fn registry_says(ex: &HttpExchange) -> Option<String> {
    if let Some(e) = ex.registry_errors.first() {
        // `redact` trims, so the separator goes outside it.
        let detail = e
            .detail
            .as_ref()
            .map(|d| format!(" detail {}", redact(&text::cap(&d.to_string(), 120))))
            .unwrap_or_default();
        return Some(format!(
            "registry says {} {}: {}{detail}",
            ex.status,
            redact(&e.code),
            redact(&e.message),
        ));
    }
    ex.body_text
        .as_ref()
        .filter(|b| !b.trim().is_empty())
        .map(|b| format!("registry says {}: {}", ex.status, redact(b)))
}

fn request_line(ex: &HttpExchange, t: Target<'_>) -> String {
    let what = match (&ex.repository, &ex.reference) {
        (Some(r), Some(f)) => format!(" {}:{}", redact(r), redact(f)),
        (Some(r), None) => format!(" {}", redact(r)),
        _ => String::new(),
    };
    format!(
        "{} {} ({}{what}) -> {}",
        redact(&ex.method),
        t.host,
        redact(&ex.path_class),
        ex.status
    )
}

/// Whether an exchange is part of a healthy flow. Rules never report these.
pub fn is_healthy(ex: &HttpExchange) -> bool {
    let token_ep = matches!(ex.path_class.as_str(), "token" | "exchange");
    match ex.status {
        100..=399 => true,
        // The challenge: the client has not authenticated yet and is told how to.
        401 => {
            ex.auth.is_none()
                && !token_ep
                && ex
                    .www_authenticate
                    .as_ref()
                    .is_some_and(|c| c.error.is_none() && !c.scheme.is_empty())
        }
        // A push asks whether a blob exists before uploading it; "no" is expected.
        404 if ex.method.eq_ignore_ascii_case("HEAD") && ex.path_class == "blob" => true,
        // containerd asks the same of a manifest before pushing it.
        404 if ex.is_push_existence_check() => true,
        404 if ex.method.eq_ignore_ascii_case("HEAD") && ex.path_class == "manifest" => {
            let (Some(repo), Some(claims)) = (
                ex.repository.as_deref(),
                ex.auth.as_ref().and_then(|a| a.claims.as_ref()),
            ) else {
                return false;
            };
            grants(claims, repo, "push")
        }
        _ => false,
    }
}

/// Causes of an HTTP exchange's failure. Empty for healthy exchanges.
pub fn exchange(
    ex: &HttpExchange,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let mut out = issued_token_skew(ex, ctx, cfg);
    if is_healthy(ex) {
        return rank(out);
    }
    let token_ep = matches!(ex.path_class.as_str(), "token" | "exchange");
    let mut base = vec![request_line(ex, t)];
    base.extend(registry_says(ex));
    out.extend(match ex.status {
        401 if token_ep => token_unauthorized(ex, &base, ctx, cfg),
        401 => resource_unauthorized(ex, &base, ctx, cfg),
        403 => forbidden(ex, &base, token_ep),
        404 => not_found(ex, &base, token_ep),
        400 => bad_request_reply(ex, &base, token_ep),
        429 => vec![find(&c::THROTTLED, High, base.clone())],
        500..=599 => vec![find(&c::REGISTRY_ERROR, High, base.clone())],
        _ => vec![find(&c::REGISTRY_ERROR, Low, base.clone())],
    });
    if has_code(ex, "TOOMANYREQUESTS") && ex.status != 429 {
        out.push(find(&c::THROTTLED, High, base.clone()));
    }
    if let Some(skew) = ex
        .date_skew_secs
        .filter(|s| s.unsigned_abs() > cfg.max_clock_skew.as_secs())
    {
        let conf = if matches!(ex.status, 401 | 403) {
            Medium
        } else {
            Low
        };
        out.push(find(
            &c::CLOCK_SKEW,
            conf,
            vec![format!(
                "the registry's Date header differs from local time by {skew} s (limit {} s)",
                cfg.max_clock_skew.as_secs()
            )],
        ));
    }
    if let Some(v) = ex.user_agent.as_deref().and_then(old_docker) {
        out.push(find(
            &c::DOCKER_CONFIG,
            Medium,
            vec![format!(
                "client is Docker {v}; ACR needs Docker 18.03 or later"
            )],
        ));
    }
    rank(out)
}

/// A Docker version older than 18.03 in a User-Agent (`docker/17.09.0-ce go/go1.8.3 ...`).
pub fn old_docker(user_agent: &str) -> Option<String> {
    let v = user_agent
        .split_whitespace()
        .find_map(|w| w.strip_prefix("docker/"))?;
    let mut parts = v.split(['.', '-']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    // Docker versions are YY.MM since 17.03; older 1.x releases are older still.
    ((major, minor) < (18, 3)).then(|| text::cap(&redact(v), 40))
}

/// The client IP quoted in ACR's firewall denial: `client with IP '203.0.113.7' is not allowed`.
pub fn denied_client_ip(message: &str) -> Option<IpAddr> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("client with ip")? + "client with ip".len();
    let rest = &message[start..];
    let rest = rest.trim_start().trim_start_matches(['\'', '"']);
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn forbidden(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let said = server_text(ex);
    let mut e = base.to_vec();
    if said.contains("is not allowed access") || said.contains("client with ip") {
        let ip = ex
            .registry_errors
            .iter()
            .map(|r| r.message.as_str())
            .chain(ex.body_text.as_deref())
            .find_map(denied_client_ip);
        if let Some(ip) = ip {
            e.push(format!(
                "ACR saw this request come from {ip}: add it to the registry's network rules"
            ));
        }
        return vec![find(&c::PUBLIC_ACCESS_RULES, High, e)];
    }
    if said.contains("admin user is disabled") {
        e.push("the admin account is disabled on this registry".into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    let insufficient = ex
        .www_authenticate
        .as_ref()
        .and_then(|c| c.error.as_deref())
        .is_some_and(|s| s.eq_ignore_ascii_case("insufficient_scope"));
    if insufficient || has_code(ex, "DENIED") || token_ep {
        let action = needed_action(ex);
        if !token_ep {
            e.push(format!("the request needs {action}: {}", role_for(action)));
        }
        return vec![find(&c::NOT_AUTHORIZED, High, e)];
    }
    if ex.path_class == "ping" {
        e.push("a 403 on /v2/ is how ACR's network rules refuse a client".into());
        return vec![
            find(&c::PUBLIC_ACCESS_RULES, Medium, e),
            find(&c::NOT_AUTHORIZED, Low, base.to_vec()),
        ];
    }
    vec![
        find(&c::NOT_AUTHORIZED, Medium, e),
        find(&c::PUBLIC_ACCESS_RULES, Low, base.to_vec()),
    ]
}

fn not_found(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let e = base.to_vec();
    if ex.path_class == "ping" || token_ep {
        let mut e = e;
        e.push("the host does not serve the registry API at this path".into());
        return vec![find(&c::REGISTRY_NAME, Medium, e)];
    }
    if has_code(ex, "NAME_UNKNOWN") {
        return vec![
            find(&c::NOT_FOUND, High, e),
            find(
                &c::REGISTRY_NAME,
                Low,
                vec!["the repository may live in another registry".into()],
            ),
        ];
    }
    if has_code(ex, "MANIFEST_UNKNOWN") {
        return vec![find(&c::NOT_FOUND, High, e)];
    }
    vec![find(&c::NOT_FOUND, Medium, e)]
}

fn bad_request_reply(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let e = base.to_vec();
    if has_code(ex, "MANIFEST_BLOB_UNKNOWN") {
        return vec![
            find(&c::GEO_REPLICATION, Medium, {
                let mut e = e.clone();
                e.push("layers pushed earlier are unknown where the manifest landed".into());
                e
            }),
            find(&c::NOT_FOUND, Low, e),
        ];
    }
    if has_code(ex, "NAME_INVALID") {
        let mut e = e;
        e.push("repository names: lower-case letters, digits, '.', '-', '_', '/'".into());
        return vec![find(&c::NOT_FOUND, Medium, e)];
    }
    if token_ep {
        return vec![find(&c::INVALID_CREDENTIALS, Medium, e)];
    }
    let codes = error_codes(ex);
    let mut e = e;
    if !codes.is_empty() {
        e.push(format!("codes: {}", codes.join(",")));
    }
    vec![find(&c::REGISTRY_ERROR, Low, e)]
}

/// Issued token whose times only make sense with a wrong local clock.
fn issued_token_skew(ex: &HttpExchange, ctx: &ContextView, cfg: &RulesConfig) -> Vec<Finding> {
    let Some(claims) = &ex.issued_token else {
        return Vec::new();
    };
    let now = unix_now(ctx);
    let skew = i64::try_from(cfg.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
    let mut e = Vec::new();
    if let Some(nbf) = claims
        .nbf
        .or(claims.iat)
        .filter(|t| *t > now.saturating_add(skew))
    {
        e.push(format!(
            "the registry issued a token valid from {}, {} s ahead of the local clock",
            unix_to_rfc3339(nbf),
            nbf.saturating_sub(now)
        ));
    }
    if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        e.push(format!(
            "the registry issued a token that had already expired at {} by the local clock",
            unix_to_rfc3339(exp)
        ));
    }
    if e.is_empty() {
        Vec::new()
    } else {
        vec![find(&c::CLOCK_SKEW, Medium, e)]
    }
}

pub(super) fn status_only(status: u16, t: Target<'_>) -> Vec<Finding> {
    let e = vec![format!("{} answered HTTP {status}", t.host)];
    match status {
        401 => vec![find(&c::INVALID_CREDENTIALS, Low, e)],
        403 => vec![
            find(&c::NOT_AUTHORIZED, Low, e.clone()),
            find(&c::PUBLIC_ACCESS_RULES, Low, e),
        ],
        404 => vec![find(&c::NOT_FOUND, Low, e)],
        429 => vec![find(&c::THROTTLED, High, e)],
        500..=599 => vec![find(&c::REGISTRY_ERROR, High, e)],
        _ => vec![find(&c::REGISTRY_ERROR, Low, e)],
    }
}
