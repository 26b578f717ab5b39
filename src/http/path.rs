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
                // Two hex digits exactly: `from_str_radix` would also take a sign (`%+1`).
                let hex = match bytes.get(i + 1..i + 3) {
                    Some(&[hi, lo]) => hex_digit(hi).zip(hex_digit(lo)).map(|(h, l)| h << 4 | l),
                    _ => None,
                };
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

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
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
        // A sign is not a hex digit (found by properties::only_well_formed_escapes_are_decoded).
        assert_eq!(percent_decode("%+1%-f", false), "%+1%-f");
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

/// Properties of the path classifier: no method or target panics it, the registry API's routes
/// are read back from any repository and reference, and decoding inverts encoding.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::text_input;
    use proptest::prelude::*;

    const SEEDS: &[&str] = &[
        "/v2/",
        "https://myreg.azurecr.io/v2/",
        "/oauth2/token?account=00000000-0000-0000-0000-000000000000&client_id=docker&offline_token=true&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&service=myreg.azurecr.io",
        "/token?service=registry.docker.io&scope=repository:library/alpine:pull&scope=repository:team/app:pull+push%20x",
        "/v2/a/b/c/manifests/sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b",
        "/v2/team/app/blobs/uploads/2b7f6c1e-1f5a-4a9e-9f3b-0c2d7e1a5b6c?_state=abc&digest=sha256%3Aabcd",
        "/v2/app/referrers/sha256:abcd?artifactType=application%2Fvnd.example",
        "/v2/team/app/tags/list?n=50&last=v1",
        "/docker/registry/v2/blobs/sha256/ab/abcd/data?se=2026&sig=xyz",
    ];

    /// A repository name as distribution's grammar allows: lower-case components with
    /// separators, one to four of them.
    fn repository() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-z0-9]+([._-][a-z0-9]+)*", 1..5).prop_map(|c| c.join("/"))
    }

    fn reference() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "sha256:[0-9a-f]{64}"]
    }

    fn percent_encode(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02x}")).collect()
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn classify_never_panics(method in "[A-Za-z]{0,8}|\\PC{0,8}", target in text_input(SEEDS)) {
            let info = classify(&method, &target);
            prop_assert!(["ping", "token", "exchange", "manifest", "blob", "upload", "catalog", "tags", "referrers", "other"].contains(&info.class));
        }

        /// Every route of the API, for any repository and reference, in origin or absolute
        /// form (any scheme case, any host and port): the same class, repository, reference.
        #[test]
        fn routes_round_trip(
            repo in repository(),
            reference in reference(),
            route in 0usize..4,
            authority in prop::option::of(("[hH][tT][tT][pP][sS]?", "[a-z0-9.-]{1,30}(:[0-9]{1,5})?")),
            query in prop::option::of("[a-z_]{1,8}=[A-Za-z0-9%]{0,8}"),
        ) {
            let (path, class, want_ref) = match route {
                0 => (format!("/v2/{repo}/manifests/{reference}"), "manifest", Some(reference.clone())),
                1 => (format!("/v2/{repo}/blobs/{reference}"), "blob", Some(reference.clone())),
                2 => (format!("/v2/{repo}/tags/list"), "tags", None),
                _ => (format!("/v2/{repo}/referrers/{reference}"), "referrers", Some(reference.clone())),
            };
            // `uploads` as a blob reference is the upload route, not a blob.
            prop_assume!(!(route == 1 && reference == "uploads"));
            let mut target = match &authority {
                Some((scheme, host)) => format!("{scheme}://{host}{path}"),
                None => path,
            };
            if let Some(q) = &query {
                target = format!("{target}?{q}");
            }
            let info = classify("GET", &target);
            prop_assert_eq!(info.class, class, "{}", target);
            prop_assert_eq!(info.repository.as_deref(), Some(repo.as_str()));
            prop_assert_eq!(info.reference, want_ref);
        }

        /// `scope` and `service` come back decoded, whatever they hold.
        #[test]
        fn token_query_round_trips(
            scopes in prop::collection::vec("[^\\s]{1,20}", 1..4),
            service in any::<String>(),
        ) {
            let target = format!(
                "/oauth2/token?service={}&scope={}",
                percent_encode(&service),
                percent_encode(&scopes.join(" "))
            );
            let info = classify("GET", &target);
            prop_assert_eq!(info.class, "token");
            prop_assert_eq!(info.scopes, scopes);
            prop_assert_eq!(info.service, Some(service));
        }

        /// Decoding inverts percent-encoding of any text; `+` is a space only in forms.
        #[test]
        fn percent_decode_inverts_encoding(s in any::<String>(), upper in any::<bool>()) {
            let mut encoded = percent_encode(&s);
            if upper {
                encoded = encoded.to_uppercase();
            }
            prop_assert_eq!(percent_decode(&encoded, true), s.clone());
            prop_assert_eq!(percent_decode(&encoded, false), s);
        }

        /// Malformed escapes and any text: no panic, and text without `%` or `+` is unchanged.
        #[test]
        fn percent_decode_is_total(s in "\\PC{0,40}|[%+0-9a-fA-Fz]{0,12}") {
            let decoded = percent_decode(&s, true);
            if !s.contains(['%', '+']) {
                prop_assert_eq!(decoded, s);
            }
        }

        /// Only `%` and two hex digits is an escape (RFC 3986 `pct-encoded`); anything else is
        /// kept as it is, as the doc comment promises. Checked against a model.
        #[test]
        fn only_well_formed_escapes_are_decoded(
            s in prop_oneof!["[%+1fFz -]{0,16}", "([%+0-9a-fA-F]|\\PC){0,16}"],
            plus in any::<bool>(),
        ) {
            let b = s.as_bytes();
            let mut want = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                    want.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap());
                    i += 3;
                } else {
                    want.push(if plus && b[i] == b'+' { b' ' } else { b[i] });
                    i += 1;
                }
            }
            prop_assert_eq!(percent_decode(&s, plus), String::from_utf8_lossy(&want).into_owned());
        }

        /// Pairs of any text survive a form encoding.
        #[test]
        fn query_pairs_round_trip(pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6)) {
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            prop_assert_eq!(query_pairs(&query).collect::<Vec<_>>(), pairs);
        }
    }
}
