//! Which client operation an exchange belongs to, from its path, method, credentials and scopes.
//!
//! The daemon's transport keeps no connection alive between registry requests, so every request
//! arrives on its own tunnel; the operation is read from the request itself, plus one fact from
//! the sequence (a second `GET /v2/` right after the first is a login).

use crate::observe::HttpExchange;
use serde::Serialize;

/// A registry client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Login,
    Pull,
    Push,
    /// Not known from what regdoc saw (a tunnel it does not decrypt, a first `GET /v2/`, which
    /// a login and a pull both start with).
    Unknown,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::Pull => "pull",
            Operation::Push => "push",
            Operation::Unknown => "unknown",
        }
    }
}

/// Whether a token scope (`repository:app:pull,push`) asks for more than pulling.
fn scope_writes(scope: &str) -> bool {
    scope
        .rsplit(':')
        .next()
        .is_some_and(|actions| actions.split(',').any(|a| a == "push" || a == "*"))
}

/// The operation of `ex`. `second_ping`: the same client sent `GET /v2/` to the same registry
/// just before this one.
pub fn of_exchange(ex: &HttpExchange, second_ping: bool) -> Operation {
    let writes = !matches!(ex.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "");
    match ex.path_class.as_str() {
        // A login sends `GET /v2/` with its credentials once it knows the challenge; a pull
        // never puts them on the ping.
        "ping" if ex.auth.is_some() || second_ping => Operation::Login,
        "ping" => Operation::Unknown,
        // A login asks for a token with no scope; pulls and pushes name the repository.
        "token" | "exchange" if ex.requested_scopes.is_empty() => Operation::Login,
        "token" | "exchange" if ex.requested_scopes.iter().any(|s| scope_writes(s)) => {
            Operation::Push
        }
        "token" | "exchange" => Operation::Pull,
        "upload" => Operation::Push,
        "manifest" | "blob" if writes => Operation::Push,
        // A push asks whether each layer is already there; a pull downloads it.
        "blob" if ex.method == "HEAD" => Operation::Push,
        "manifest" | "blob" => Operation::Pull,
        _ => Operation::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::credentials::CredentialFacts;

    fn ex(method: &str, class: &str) -> HttpExchange {
        HttpExchange {
            method: method.into(),
            path_class: class.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pings() {
        assert_eq!(of_exchange(&ex("GET", "ping"), false), Operation::Unknown);
        assert_eq!(of_exchange(&ex("GET", "ping"), true), Operation::Login);
        let mut p = ex("GET", "ping");
        p.auth = Some(CredentialFacts {
            scheme: "basic".into(),
            ..Default::default()
        });
        assert_eq!(of_exchange(&p, false), Operation::Login);
    }

    #[test]
    fn tokens_by_scope() {
        let mut t = ex("GET", "token");
        assert_eq!(of_exchange(&t, false), Operation::Login);
        t.requested_scopes = vec!["repository:e2e/busybox:pull".into()];
        assert_eq!(of_exchange(&t, false), Operation::Pull);
        t.requested_scopes = vec!["repository:e2e/busybox:pull,push".into()];
        assert_eq!(of_exchange(&t, false), Operation::Push);
    }

    #[test]
    fn registry_paths() {
        assert_eq!(of_exchange(&ex("GET", "manifest"), false), Operation::Pull);
        assert_eq!(of_exchange(&ex("PUT", "manifest"), false), Operation::Push);
        assert_eq!(of_exchange(&ex("GET", "blob"), false), Operation::Pull);
        assert_eq!(of_exchange(&ex("HEAD", "blob"), false), Operation::Push);
        assert_eq!(of_exchange(&ex("POST", "upload"), false), Operation::Push);
        assert_eq!(of_exchange(&ex("GET", "tags"), false), Operation::Unknown);
    }
}
