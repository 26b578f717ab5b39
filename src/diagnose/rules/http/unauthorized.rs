//! 401s: credentials refused at the token endpoint, and tokens refused on registry resources.
//! The token's own times, its age, and what it grants decide between expired credentials,
//! wrong credentials, a missing grant and a repository that does not exist.

use super::*;

pub(super) fn token_unauthorized(
    ex: &HttpExchange,
    base: &[String],
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let now = unix_now(ctx);
    let mut e = base.to_vec();
    e.extend(username_fact(ex));
    let said = server_text(ex);
    if said.contains("not registered with aad") {
        e.push(
            "ACR does not know this user name as an application (client) id in its tenant".into(),
        );
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    if said.contains("client id must be guid") {
        e.push("a service principal logs in with its application (client) id, a GUID".into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    let Some(auth) = &ex.auth else {
        if ex.method.eq_ignore_ascii_case("POST") || ex.path_class == "exchange" {
            return body_token_unauthorized(ex, e, ctx, cfg, now);
        }
        e.push(no_credentials(ex).into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    };
    if let Some(claims) = &auth.claims {
        if let Some(f) = claims_time_findings(claims, now, &e, cfg, "presented") {
            return f;
        }
        let seen = seen_issued(ctx, claims);
        if let Some(f) = outlived_lifetime(claims, seen, now, &e, cfg, "presented") {
            return f;
        }
    }
    if auth.username_kind == Some(UsernameKind::NullGuidToken) && auth.claims.is_none() {
        e.push(
            "the null-GUID user name needs an ACR token from `az acr login --expose-token` as password; the password is not a token"
                .into(),
        );
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    vec![
        find(&c::INVALID_CREDENTIALS, High, e),
        find(
            &c::EXPIRED_CREDENTIALS,
            Low,
            vec![
                "an expired service principal secret or token password gets the same answer".into(),
            ],
        ),
    ]
}

/// A 401 to a POST whose token travels in the form body (`/oauth2/exchange` with an Entra
/// token, `/oauth2/token` with an ACR refresh token): the token itself was refused.
fn body_token_unauthorized(
    ex: &HttpExchange,
    mut e: Vec<String>,
    ctx: &ContextView,
    cfg: &RulesConfig,
    now: i64,
) -> Vec<Finding> {
    // The refresh token this client was issued earlier tells whether it simply ran out.
    if let Some(note) = ctx
        .token
        .as_ref()
        .filter(|n| n.claims.grant_type.as_deref() == Some("refresh_token"))
    {
        if let Some(f) = claims_time_findings(&note.claims, now, &e, cfg, "refresh") {
            return f;
        }
        let seen = Some(unix(note.at));
        if let Some(f) = outlived_lifetime(&note.claims, seen, now, &e, cfg, "refresh") {
            return f;
        }
    }
    e.push(if ex.path_class == "exchange" {
        "the Entra ID token sent to /oauth2/exchange was refused: run `az login`, then `az acr login` again"
            .into()
    } else {
        "the token sent in the request body was refused: log in again".to_string()
    });
    vec![
        find(&c::EXPIRED_CREDENTIALS, Medium, e),
        find(
            &c::INVALID_CREDENTIALS,
            Medium,
            vec!["the identity behind the token may not be valid for this registry".into()],
        ),
    ]
}

/// Expired or not-yet-valid claims: the finding for them, or `None` when the times are fine.
fn claims_time_findings(
    claims: &Claims,
    now: i64,
    base: &[String],
    cfg: &RulesConfig,
    which: &str,
) -> Option<Vec<Finding>> {
    let skew = i64::try_from(cfg.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
    if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        let mut e = base.to_vec();
        e.push(format!(
            "the {which} token expired at {} ({} s before this request)",
            unix_to_rfc3339(exp),
            now.saturating_sub(exp)
        ));
        if let Some(iat) = claims.iat {
            e.push(format!("it was issued at {}", unix_to_rfc3339(iat)));
        }
        return Some(vec![find(&c::EXPIRED_CREDENTIALS, High, e)]);
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now.saturating_add(skew)) {
        let mut e = base.to_vec();
        e.push(format!(
            "the {which} token is not valid before {} ({} s ahead of the local clock)",
            unix_to_rfc3339(nbf),
            nbf.saturating_sub(now)
        ));
        return Some(vec![find(&c::CLOCK_SKEW, High, e)]);
    }
    None
}

/// A token without `exp` that is older than `diagnosis.token_lifetime`: the finding for it, or
/// `None` when the token carries `exp` (its own expiry is then the fact, see
/// [`claims_time_findings`]), when its issue time is unknown, or when it is young enough.
///
/// The issue time is the token's `iat`, else `seen` (when regdoc saw the registry issue it).
/// Medium, not High: the lifetime is the operator's assumption, not a fact the token states, so
/// a refused credential stays a possible reading.
fn outlived_lifetime(
    claims: &Claims,
    seen: Option<i64>,
    now: i64,
    base: &[String],
    cfg: &RulesConfig,
    which: &str,
) -> Option<Vec<Finding>> {
    if claims.exp.is_some() {
        return None;
    }
    let (issued, how) = match (claims.iat, seen) {
        (Some(iat), _) => (iat, "by its iat claim"),
        (None, Some(at)) => (at, "when regdoc saw the registry issue it"),
        (None, None) => return None,
    };
    let lifetime = cfg.token_lifetime.as_secs();
    // A negative age (an `iat` ahead of the local clock) is no age at all.
    let token_age = u64::try_from(now.saturating_sub(issued)).ok()?;
    if token_age <= lifetime {
        return None;
    }
    let mut e = base.to_vec();
    e.push(format!(
        "the {which} token carries no exp claim and was issued at {} ({how}): it is {} old ({token_age} s), past the {} ({lifetime} s) lifetime assumed for registry tokens (diagnosis.token_lifetime)",
        unix_to_rfc3339(issued),
        age(Duration::from_secs(token_age)),
        age(cfg.token_lifetime),
    ));
    Some(vec![
        find(&c::EXPIRED_CREDENTIALS, Medium, e),
        find(
            &c::INVALID_CREDENTIALS,
            Low,
            vec![format!(
                "if this registry's tokens live longer than {}, the credential itself was refused",
                age(cfg.token_lifetime)
            )],
        ),
    ])
}

pub(super) fn resource_unauthorized(
    ex: &HttpExchange,
    base: &[String],
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let now = unix_now(ctx);
    let mut e = base.to_vec();
    let challenge_error = ex
        .www_authenticate
        .as_ref()
        .and_then(|c| c.error.as_deref())
        .map(str::to_ascii_lowercase);
    let Some(auth) = &ex.auth else {
        // 401 without a usable challenge: the registry did not say how to authenticate.
        e.push("401 without a WWW-Authenticate challenge".into());
        return vec![find(&c::REGISTRY_ERROR, Medium, e)];
    };
    let presented = auth.claims.as_ref();
    let mut outlived = None;
    if let Some(claims) = presented {
        if let Some(f) = claims_time_findings(claims, now, &e, cfg, "presented") {
            return f;
        }
        let seen = seen_issued(ctx, claims);
        outlived = outlived_lifetime(claims, seen, now, &e, cfg, "presented");
    } else if auth.scheme == "bearer" {
        // An opaque token: reason from the claims regdoc saw issued, if any.
        if let Some(note) = &ctx.token {
            if let Some(f) = claims_time_findings(&note.claims, now, &e, cfg, "last issued") {
                return f;
            }
            let seen = Some(unix(note.at));
            outlived = outlived_lifetime(&note.claims, seen, now, &e, cfg, "last issued");
        }
    }
    let action = needed_action(ex);
    if challenge_error.as_deref() == Some("insufficient_scope") {
        // The registry accepted the token and judged its scope, so its age is not the reason.
        e.push(format!(
            "the registry says the token lacks the scope for {action}; needs {}",
            role_for(action)
        ));
        return vec![find(&c::NOT_AUTHORIZED, High, e)];
    }
    if let Some(f) = outlived {
        return f;
    }
    if challenge_error.as_deref() == Some("invalid_token") {
        e.push("the registry rejected the token itself (invalid_token)".into());
        return vec![
            find(&c::INVALID_CREDENTIALS, Medium, e),
            find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
        ];
    }
    if ex.path_class == "ping" || auth.scheme == "basic" {
        e.extend(username_fact(ex));
        return vec![
            find(&c::INVALID_CREDENTIALS, High, e),
            find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
        ];
    }
    let claims = presented.or(ctx.token.as_ref().map(|n| &n.claims));
    match (ex.repository.as_deref(), claims) {
        (Some(repo), Some(claims)) if grants(claims, repo, action) => {
            e.push(describe_grants(claims, repo));
            e.push(format!(
                "the token does grant {action} on {repo}: ACR answers 401 for a repository or tag that does not exist"
            ));
            let conf = if ex.path_class == "manifest" {
                Medium
            } else {
                Low
            };
            vec![
                find(&c::NOT_FOUND, conf, e),
                find(&c::NOT_AUTHORIZED, Low, base.to_vec()),
            ]
        }
        (Some(repo), Some(claims)) => {
            e.push(describe_grants(claims, repo));
            e.push(format!(
                "the request needs {action}: grant {} (or add it to the token's scope map)",
                role_for(action)
            ));
            vec![find(&c::NOT_AUTHORIZED, High, e)]
        }
        _ => {
            e.push(format!(
                "the request needs {action} ({}); the token's grants are not visible",
                role_for(action)
            ));
            vec![
                find(&c::NOT_AUTHORIZED, Medium, e),
                find(
                    &c::NOT_FOUND,
                    Low,
                    vec!["ACR also answers 401 for a repository or tag that does not exist".into()],
                ),
                find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
            ]
        }
    }
}

/// When regdoc saw the registry issue a token with exactly these claims, if it did. Equal claims
/// may belong to an earlier token than the one noted, never a later one, so an age counted from
/// this moment is never more than the token's real age.
fn seen_issued(ctx: &ContextView, claims: &Claims) -> Option<i64> {
    ctx.token
        .as_ref()
        .filter(|n| n.claims == *claims)
        .map(|n| unix(n.at))
}

fn describe_grants(claims: &Claims, repo: &str) -> String {
    let actions: Vec<String> = claims
        .access
        .iter()
        .flatten()
        .filter(|a| a.kind == "repository" && (a.name == repo || a.name == "*"))
        .flat_map(|a| a.actions.iter().cloned())
        .collect();
    if actions.is_empty() {
        format!("the token grants nothing on repository {repo}")
    } else {
        format!(
            "the token grants [{}] on repository {repo}",
            actions.join(",")
        )
    }
}

fn username_fact(ex: &HttpExchange) -> Option<String> {
    let auth = ex.auth.as_ref()?;
    Some(match auth.username_kind {
        Some(UsernameKind::NullGuidToken) => {
            "user name 00000000-0000-0000-0000-000000000000 (an ACR token as password)".into()
        }
        Some(UsernameKind::ServicePrincipal) => {
            "user name is a GUID (a service principal application id)".into()
        }
        Some(UsernameKind::Other) => {
            "user name is neither a GUID nor the null GUID (admin account or repository token)"
                .into()
        }
        None => format!("credentials: {} scheme", redact(&auth.scheme)),
    })
}

/// Why a request without credentials was refused, and where that client gets them: `docker
/// login` for Docker; for containerd (`ctr`, a Kubernetes node's CRI) its caller passes them.
fn no_credentials(ex: &HttpExchange) -> &'static str {
    if ex.from_containerd() {
        "the client (containerd) sent no credentials and anonymous pull is off: containerd gets them from its caller (`ctr images pull --user`; on a Kubernetes node the pod's imagePullSecrets or the kubelet's identity with AcrPull on the registry, which `az aks check-acr` verifies on AKS)"
    } else {
        "the client sent no credentials: anonymous pull is off, run docker login"
    }
}
