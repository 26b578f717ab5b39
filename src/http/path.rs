//! Registry API paths: which call a request is (distribution API v2 and ACR's token endpoints),
//! and the repository, reference and token scopes it names.

use serde::Serialize;

/// What a request path means to a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathInfo {
    /// `ping` (`/v2/`), `token`, `exchange`, `manifest`, `blob`, `upload`, `catalog`, `tags`,
    /// `referrers` or `other`.
    pub class: &'static str,
    /// Repository named in the path (`team/app`).
    pub repository: Option<String>,
    /// Tag or digest (manifest, blob, referrers), or the `digest` query of an upload.
    pub reference: Option<String>,
    /// `scope` query values, URL-decoded, one entry per space-separated scope.
    pub scopes: Vec<String>,
    /// `service` query value.
    pub service: Option<String>,
}

/// Classify a request. `path_and_query` is the request target in origin form
/// (`/v2/app/manifests/v1?x=y`); an absolute-form target (`https://host/v2/`) is accepted too.
pub fn classify(method: &str, path_and_query: &str) -> PathInfo {
    let target = strip_authority(path_and_query);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // A fragment is never sent on the wire, but a hand-written URL may carry one.
    let query = query.split('#').next().unwrap_or_default();
    let path = path.split('#').next().unwrap_or_default();

    let mut info = PathInfo {
        class: "other",
        ..PathInfo::default()
    };
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "scope" => info
                .scopes
                .extend(value.split_whitespace().map(str::to_string)),
            "service" if info.service.is_none() => info.service = Some(value),
            _ => {}
        }
    }

    let path_lower = path.to_ascii_lowercase();
    let path_lower = path_lower.trim_end_matches('/');
    if path_lower == "/oauth2/token" {
        info.class = "token";
        return info;
    }
    if path_lower == "/oauth2/exchange" {
        info.class = "exchange";
        return info;
    }
    // Token servers of other registries (`auth.docker.io/token`, `/service/token`) are told
    // apart from content paths by the `service` parameter distribution's token flow adds.
    if path_lower.ends_with("/token")
        && info.service.is_some()
        && (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("POST"))
    {
        info.class = "token";
        return info;
    }
    let Some(rest) = path.strip_prefix("/v2") else {
        return info;
    };
    if rest.is_empty() || rest == "/" {
        info.class = "ping";
        return info;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return info;
    };
    classify_v2(rest, query, &mut info);
    info
}

/// `rest` is the path after `/v2/`. Repository names may hold slashes, so the route is read
/// from the end, as distribution's router does.
fn classify_v2(rest: &str, query: &str, info: &mut PathInfo) {
    if rest == "_catalog" {
        info.class = "catalog";
        return;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let repo = |end: usize| -> Option<String> {
        let parts = &segments[..end];
        (!parts.is_empty() && parts.iter().all(|p| !p.is_empty())).then(|| parts.join("/"))
    };
    let (class, repo_end, reference) = match segments.as_slice() {
        [.., "tags", "list"] if n >= 3 => ("tags", n - 2, None),
        [.., "blobs", "uploads", _] if n >= 4 => ("upload", n - 3, None),
        [.., "manifests", r] if n >= 3 && !r.is_empty() => ("manifest", n - 2, Some(*r)),
        [.., "blobs", r] if n >= 3 && !r.is_empty() && *r != "uploads" => ("blob", n - 2, Some(*r)),
        [.., "blobs", "uploads"] if n >= 3 => ("upload", n - 2, None),
        [.., "referrers", r] if n >= 3 && !r.is_empty() => ("referrers", n - 2, Some(*r)),
        _ => return,
    };
    let Some(repository) = repo(repo_end) else {
        return;
    };
    info.class = class;
    info.repository = Some(repository);
    info.reference = match reference {
        Some(r) => Some(percent_decode(r, false)),
        // The final PUT of an upload names the blob's digest in the query.
        None if class == "upload" => query_pairs(query)
            .find(|(k, _)| k == "digest")
            .map(|(_, v)| v),
        None => None,
    };
}

fn strip_authority(target: &str) -> &str {
    for scheme in ["https://", "http://"] {
        let head = target.get(..scheme.len());
        if head.is_some_and(|h| h.eq_ignore_ascii_case(scheme)) {
            let rest = &target[scheme.len()..];
            return rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
        }
    }
    target
}

/// Pairs of an `application/x-www-form-urlencoded` string (a query or a form body), decoded.
/// Empty pieces are skipped; a piece without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|piece| {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        (percent_decode(k, true), percent_decode(v, true))
    })
}

/// Percent-decode `s` (and `+` as space in form encoding). Malformed escapes are kept as they
/// are; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(method: &str, p: &str) -> &'static str {
        classify(method, p).class
    }

    #[test]
    fn ping() {
        assert_eq!(class("GET", "/v2/"), "ping");
        assert_eq!(class("GET", "/v2"), "ping");
        assert_eq!(class("HEAD", "/v2/?x=1"), "ping");
        assert_eq!(class("GET", "https://myreg.azurecr.io/v2/"), "ping");
        assert_eq!(class("GET", "http://localhost:5000/v2"), "ping");
    }

    #[test]
    fn acr_token_requests() {
        // Docker's username/password flow: GET realm with Basic auth.
        let info = classify(
            "GET",
            "/oauth2/token?account=00000000-0000-0000-0000-000000000000&client_id=docker&offline_token=true&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&service=myreg.azurecr.io",
        );
        assert_eq!(info.class, "token");
        assert_eq!(info.scopes, vec!["repository:team/app:pull,push"]);
        assert_eq!(info.service.as_deref(), Some("myreg.azurecr.io"));
        assert_eq!(info.repository, None);

        assert_eq!(class("POST", "/oauth2/token"), "token");
        assert_eq!(class("POST", "/oauth2/exchange"), "exchange");
        assert_eq!(class("POST", "/OAuth2/Exchange/"), "exchange");
    }

    #[test]
    fn several_scopes() {
        let info = classify(
            "GET",
            "/token?service=registry.docker.io&scope=repository:library/alpine:pull&scope=repository:team/app:pull+push%20x",
        );
        assert_eq!(info.class, "token");
        assert_eq!(
            info.scopes,
            vec![
                "repository:library/alpine:pull",
                "repository:team/app:pull",
                "push",
                "x"
            ]
        );
        // Without `service` a path ending in /token is not a token request.
        assert_eq!(class("GET", "/v2/app/token"), "other");
        assert_eq!(class("DELETE", "/token?service=x"), "other");
    }

    #[test]
    fn manifests_with_nested_repositories() {
        let info = classify("GET", "/v2/team/app/manifests/v1");
        assert_eq!(info.class, "manifest");
        assert_eq!(info.repository.as_deref(), Some("team/app"));
        assert_eq!(info.reference.as_deref(), Some("v1"));

        let info = classify(
            "HEAD",
            "/v2/a/b/c/manifests/sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b",
        );
        assert_eq!(info.repository.as_deref(), Some("a/b/c"));
        assert!(info.reference.unwrap().starts_with("sha256:6c3c"));

        // A repository may itself contain a component called "blobs" or "manifests".
        let info = classify("GET", "/v2/blobs/manifests/manifests/latest");
        assert_eq!(info.class, "manifest");
        assert_eq!(info.repository.as_deref(), Some("blobs/manifests"));
        assert_eq!(info.reference.as_deref(), Some("latest"));
    }

    #[test]
    fn blobs_and_uploads() {
        let info = classify("GET", "/v2/team/app/blobs/sha256:abcd");
        assert_eq!(info.class, "blob");
        assert_eq!(info.repository.as_deref(), Some("team/app"));
        assert_eq!(info.reference.as_deref(), Some("sha256:abcd"));

        let info = classify("POST", "/v2/team/app/blobs/uploads/");
        assert_eq!(info.class, "upload");
        assert_eq!(info.repository.as_deref(), Some("team/app"));
        assert_eq!(info.reference, None);

        let info = classify(
            "PUT",
            "/v2/team/app/blobs/uploads/2b7f6c1e-1f5a-4a9e-9f3b-0c2d7e1a5b6c?_state=abc&digest=sha256%3Aabcd",
        );
        assert_eq!(info.class, "upload");
        assert_eq!(info.reference.as_deref(), Some("sha256:abcd"));

        let info = classify("POST", "/v2/app/blobs/uploads?mount=sha256:1&from=other");
        assert_eq!(info.class, "upload");
        assert_eq!(info.repository.as_deref(), Some("app"));
    }

    #[test]
    fn catalog_tags_referrers() {
        assert_eq!(class("GET", "/v2/_catalog?n=100"), "catalog");
        let info = classify("GET", "/v2/team/app/tags/list?n=50&last=v1");
        assert_eq!(info.class, "tags");
        assert_eq!(info.repository.as_deref(), Some("team/app"));
        let info = classify(
            "GET",
            "/v2/app/referrers/sha256:abcd?artifactType=application%2Fvnd.example",
        );
        assert_eq!(info.class, "referrers");
        assert_eq!(info.reference.as_deref(), Some("sha256:abcd"));
    }

    #[test]
    fn other_paths() {
        for p in [
            "/",
            "",
            "/v2x/",
            "/v1/_ping",
            "/v2/manifests/latest",
            "/v2//manifests/latest",
            "/v2/a//b/manifests/latest",
            "/v2/app/manifests/",
            "/v2/app/tags/list/extra",
            "/acr/v1/_tags",
            "/docker/registry/v2/blobs/sha256/ab/abcd/data?se=2026&sig=xyz",
            "/oauth2/authorize",
            "/é/v2/",
            "httpé://x/v2/",
        ] {
            assert_eq!(class("GET", p), "other", "{p:?}");
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%ff", true), "\u{fffd}");
        let pairs: Vec<_> = query_pairs("a=1&&b&c=%3D").collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "=".into())
            ]
        );
    }
}
