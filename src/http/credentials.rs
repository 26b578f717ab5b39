//! Facts about the credentials a client presented. Never the credentials themselves.
//!
//! An `Authorization` header or a token-endpoint form body is reduced to what the diagnosis
//! needs (scheme, kind of user name, whether a secret is present, the claims of a token) and the
//! input is dropped. No field of the types here can hold a password, a token or a user name.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use serde::Serialize;

use crate::http::jwt::{self, Claims};
use crate::http::path::query_pairs;

/// Standard base64 with or without padding: some clients drop the `=`.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The user name ACR expects with a refresh token as password.
const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Scopes kept from one form body.
const MAX_SCOPES: usize = 32;

/// What kind of user name a Basic credential carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameKind {
    /// `00000000-0000-0000-0000-000000000000`: the password is an ACR refresh token.
    NullGuidToken,
    /// A GUID: a service principal's application (client) id.
    ServicePrincipal,
    Other,
}

impl UsernameKind {
    /// Classify a user name without keeping it.
    pub fn of(username: &str) -> UsernameKind {
        let u = username.trim();
        if u == NULL_GUID {
            UsernameKind::NullGuidToken
        } else if is_guid(u) {
            UsernameKind::ServicePrincipal
        } else {
            UsernameKind::Other
        }
    }
}

/// `8-4-4-4-12` hex digits, either case.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Description of an `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CredentialFacts {
    /// `basic`, `bearer` or another scheme, lower case.
    pub scheme: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_kind: Option<UsernameKind>,
    /// Claims of a bearer JWT (or of a JWT used as a Basic password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<crate::http::jwt::Claims>,
    /// The password (Basic) or token (Bearer) is empty.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_secret: bool,
    /// The credential could not be decoded (Basic that is not base64 of `user:password`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub malformed: bool,
}

/// Describe an `Authorization` header value. `None` for an empty value.
pub fn describe(authorization_value: &str) -> Option<CredentialFacts> {
    let value = authorization_value.trim();
    let (scheme, rest) = value
        .split_once([' ', '\t'])
        .map_or((value, ""), |(s, r)| (s, r.trim()));
    if scheme.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut facts = CredentialFacts {
        // A scheme is a token; anything else is not echoed into a log.
        scheme: if scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            scheme
        } else {
            "invalid".to_string()
        },
        username_kind: None,
        claims: None,
        empty_secret: false,
        malformed: false,
    };
    match facts.scheme.as_str() {
        "basic" => describe_basic(rest, &mut facts),
        "bearer" => {
            facts.empty_secret = rest.is_empty();
            facts.claims = jwt::decode_claims(rest);
        }
        _ => {}
    }
    Some(facts)
}

fn describe_basic(encoded: &str, facts: &mut CredentialFacts) {
    let Ok(decoded) = B64.decode(encoded) else {
        facts.malformed = true;
        return;
    };
    let Ok(text) = std::str::from_utf8(&decoded) else {
        facts.malformed = true;
        return;
    };
    let Some((user, password)) = text.split_once(':') else {
        facts.malformed = true;
        return;
    };
    facts.username_kind = Some(UsernameKind::of(user));
    facts.empty_secret = password.is_empty();
    facts.claims = jwt::decode_claims(password);
}

/// Facts from an `application/x-www-form-urlencoded` body sent to `/oauth2/token` or
/// `/oauth2/exchange`. Secrets appear only as presence flags and token claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FormFacts {
    /// `password`, `refresh_token`, `access_token`, `access_token_refresh_token`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `scope` values, one entry per space-separated scope.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `tenant` (exchange requests): a directory id, not a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `client_id` (`docker` for Docker's own token flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Kind of the `username` of a password grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_kind: Option<UsernameKind>,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    pub has_password: bool,
    /// Claims of the `access_token` field (an Entra ID token on exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_claims: Option<Claims>,
    /// Claims of the `refresh_token` field (an ACR refresh token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_claims: Option<Claims>,
}

/// Describe a token-endpoint form body. Unknown fields are ignored; repeated fields keep the
/// first value (scopes accumulate).
pub fn describe_form_body(body: &[u8]) -> FormFacts {
    let text = String::from_utf8_lossy(body);
    let mut facts = FormFacts::default();
    for (key, value) in query_pairs(text.trim()) {
        let set = |slot: &mut Option<String>| {
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.chars().take(256).collect());
            }
        };
        match key.as_str() {
            "grant_type" => set(&mut facts.grant_type),
            "service" => set(&mut facts.service),
            "tenant" => set(&mut facts.tenant),
            "client_id" => set(&mut facts.client_id),
            "scope" => {
                let room = MAX_SCOPES.saturating_sub(facts.scopes.len());
                facts
                    .scopes
                    .extend(value.split_whitespace().take(room).map(str::to_string));
            }
            "username" if facts.username_kind.is_none() => {
                facts.username_kind = Some(UsernameKind::of(&value));
            }
            "password" => facts.has_password |= !value.is_empty(),
            "access_token" => {
                facts.has_access_token |= !value.is_empty();
                if facts.access_token_claims.is_none() {
                    facts.access_token_claims = jwt::decode_claims(&value);
                }
            }
            "refresh_token" => {
                facts.has_refresh_token |= !value.is_empty();
                if facts.refresh_token_claims.is_none() {
                    facts.refresh_token_claims = jwt::decode_claims(&value);
                }
            }
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::jwt::test_token;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    const SP_ID: &str = "3f8a1c2e-9b4d-4e6f-8a7b-1c2d3e4f5a6b";
    const SECRET: &str = "Xy8Q~s3cr3t.Pa55w0rd-value_42";

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    fn refresh_token() -> String {
        test_token(&json!({
            "jti": "8c7e2e1a-aaaa-bbbb-cccc-000000000000",
            "sub": "someone@contoso.com",
            "nbf": 1_700_000_000,
            "exp": 1_700_010_800,
            "iat": 1_700_000_000,
            "iss": "Azure Container Registry",
            "aud": "myreg.azurecr.io",
            "version": "1.0",
            "grant_type": "refresh_token",
            "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "permissions": {"actions": ["*"], "notActions": []},
            "roles": []
        }))
    }

    #[test]
    fn basic_with_null_guid_and_refresh_token() {
        let token = refresh_token();
        let facts = describe(&basic(NULL_GUID, &token)).unwrap();
        assert_eq!(facts.scheme, "basic");
        assert_eq!(facts.username_kind, Some(UsernameKind::NullGuidToken));
        let claims = facts.claims.unwrap();
        assert_eq!(claims.grant_type.as_deref(), Some("refresh_token"));
        assert!(claims.has_audience("myreg.azurecr.io"));
        assert!(!facts.empty_secret);
    }

    #[test]
    fn basic_with_service_principal() {
        let facts = describe(&basic(SP_ID, SECRET)).unwrap();
        assert_eq!(facts.username_kind, Some(UsernameKind::ServicePrincipal));
        assert_eq!(facts.claims, None);
        let upper = describe(&basic(&SP_ID.to_uppercase(), SECRET)).unwrap();
        assert_eq!(upper.username_kind, Some(UsernameKind::ServicePrincipal));
    }

    #[test]
    fn basic_with_admin_user_and_odd_forms() {
        let facts = describe(&basic("myreg", SECRET)).unwrap();
        assert_eq!(facts.username_kind, Some(UsernameKind::Other));
        // Password containing colons: only the first colon splits.
        let facts = describe(&basic("myreg", "a:b:c")).unwrap();
        assert!(!facts.empty_secret);
        let facts = describe(&basic("myreg", "")).unwrap();
        assert!(facts.empty_secret);
        // Unpadded base64 and odd scheme case.
        let unpadded = STANDARD.encode(format!("{SP_ID}:{SECRET}x"));
        let unpadded = unpadded.trim_end_matches('=');
        let facts = describe(&format!("bAsIc   {unpadded}")).unwrap();
        assert_eq!(facts.scheme, "basic");
        assert_eq!(facts.username_kind, Some(UsernameKind::ServicePrincipal));
        assert!(!facts.malformed);
    }

    #[test]
    fn malformed_basic() {
        for value in [
            "Basic",
            "Basic !!!notbase64",
            &format!("Basic {}", STANDARD.encode("no-colon")),
            &format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
        ] {
            let facts = describe(value).unwrap();
            assert_eq!(facts.scheme, "basic");
            assert!(facts.malformed, "{value}");
            assert_eq!(facts.username_kind, None);
        }
    }

    #[test]
    fn bearer() {
        let token = test_token(&json!({
            "aud": "myreg.azurecr.io",
            "exp": 1_700_004_500,
            "grant_type": "access_token",
            "access": [{"type": "repository", "name": "app", "actions": ["pull"]}]
        }));
        let facts = describe(&format!("Bearer {token}")).unwrap();
        assert_eq!(facts.scheme, "bearer");
        assert_eq!(facts.username_kind, None);
        assert_eq!(
            facts.claims.unwrap().actions_for("app"),
            Some(vec!["pull".to_string()])
        );
        let opaque = describe("Bearer opaque-token-value").unwrap();
        assert_eq!(opaque.claims, None);
        assert!(!opaque.empty_secret);
        assert!(describe("Bearer").unwrap().empty_secret);
    }

    #[test]
    fn other_schemes_and_empty() {
        let facts = describe("Negotiate YIIGhgYJKoZIhvcSAQICAQBu").unwrap();
        assert_eq!(facts.scheme, "negotiate");
        assert_eq!(facts.claims, None);
        assert_eq!(describe(""), None);
        assert_eq!(describe("   "), None);
        assert_eq!(describe("ab\"c:d x").unwrap().scheme, "invalid");
    }

    #[test]
    fn secrets_never_reach_debug_or_json() {
        let token = refresh_token();
        let signature = token.rsplit('.').next().unwrap().to_string();
        let payload = token.split('.').nth(1).unwrap().to_string();
        for header in [
            basic(NULL_GUID, &token),
            basic(SP_ID, SECRET),
            basic("myreg", SECRET),
            format!("Bearer {token}"),
        ] {
            let facts = describe(&header).unwrap();
            let debug = format!("{facts:?}");
            let json = serde_json::to_string(&facts).unwrap();
            let encoded = header.split(' ').nth(1).unwrap();
            for out in [&debug, &json] {
                for secret in [
                    SECRET,
                    token.as_str(),
                    payload.as_str(),
                    signature.as_str(),
                    SP_ID,
                    "myreg\"",
                    encoded,
                    "someone@contoso.com",
                    "8c7e2e1a",
                ] {
                    assert!(!out.contains(secret), "{secret} leaked in {out}");
                }
            }
        }
    }

    #[test]
    fn exchange_form() {
        let aad = test_token(&json!({
            "aud": "https://management.azure.com/",
            "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "exp": 1_700_003_600,
            "upn": "someone@contoso.com"
        }));
        let body = format!(
            "grant_type=access_token&service=myreg.azurecr.io&tenant=72f988bf-86f1-41af-91ab-2d7cd011db47&access_token={aad}"
        );
        let facts = describe_form_body(body.as_bytes());
        assert_eq!(facts.grant_type.as_deref(), Some("access_token"));
        assert_eq!(facts.service.as_deref(), Some("myreg.azurecr.io"));
        assert_eq!(
            facts.tenant.as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert!(facts.has_access_token);
        assert!(!facts.has_refresh_token);
        let claims = facts.access_token_claims.as_ref().unwrap();
        assert!(claims.has_audience("https://management.azure.com/"));
        let json = serde_json::to_string(&facts).unwrap();
        assert!(!json.contains(&aad));
        assert!(!json.contains("someone@contoso.com"));
    }

    #[test]
    fn refresh_token_grant_form() {
        let rt = refresh_token();
        let body = format!(
            "grant_type=refresh_token&service=myreg.azurecr.io&scope=repository%3Ateam%2Fapp%3Apull&scope=registry:catalog:*&refresh_token={rt}&client_id=docker"
        );
        let facts = describe_form_body(body.as_bytes());
        assert_eq!(facts.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(
            facts.scopes,
            vec!["repository:team/app:pull", "registry:catalog:*"]
        );
        assert_eq!(facts.client_id.as_deref(), Some("docker"));
        assert!(facts.has_refresh_token);
        assert_eq!(
            facts.refresh_token_claims.unwrap().grant_type.as_deref(),
            Some("refresh_token")
        );
        let debug = format!("{:?}", describe_form_body(body.as_bytes()));
        assert!(!debug.contains(&rt));
    }

    #[test]
    fn password_grant_form() {
        let body = format!(
            "grant_type=password&service=myreg.azurecr.io&scope=repository:app:pull+repository:lib:pull&username={SP_ID}&password={}",
            SECRET.replace('~', "%7E")
        );
        let facts = describe_form_body(body.as_bytes());
        assert_eq!(facts.grant_type.as_deref(), Some("password"));
        assert_eq!(facts.username_kind, Some(UsernameKind::ServicePrincipal));
        assert!(facts.has_password);
        assert_eq!(
            facts.scopes,
            vec!["repository:app:pull", "repository:lib:pull"]
        );
        let out = format!("{facts:?}{}", serde_json::to_string(&facts).unwrap());
        assert!(!out.contains(SECRET) && !out.contains("s3cr3t") && !out.contains(SP_ID));
    }

    #[test]
    fn odd_form_bodies() {
        assert_eq!(describe_form_body(b""), FormFacts::default());
        assert_eq!(describe_form_body(b"\xff\xfe&&=&"), FormFacts::default());
        let facts = describe_form_body(b"password=&access_token=&grant_type=");
        assert!(!facts.has_password && !facts.has_access_token);
        assert_eq!(facts.grant_type, None);
        let many = "scope=a&".repeat(100);
        assert_eq!(describe_form_body(many.as_bytes()).scopes.len(), MAX_SCOPES);
        let opaque = describe_form_body(b"access_token=not-a-jwt");
        assert!(opaque.has_access_token);
        assert_eq!(opaque.access_token_claims, None);
    }

    #[test]
    fn guid_shapes() {
        assert!(is_guid(NULL_GUID));
        assert!(is_guid(SP_ID));
        assert!(!is_guid("3f8a1c2e9b4d4e6f8a7b1c2d3e4f5a6b"));
        assert!(!is_guid("3f8a1c2e-9b4d-4e6f-8a7b-1c2d3e4f5a6g"));
        assert!(!is_guid("{3f8a1c2e-9b4d-4e6f-8a7b-1c2d3e4f5a6b}"));
        assert_eq!(
            UsernameKind::of(" 00000000-0000-0000-0000-000000000000 "),
            UsernameKind::NullGuidToken
        );
    }
}

/// Properties of the credential describers: no header or body panics them, the facts are the
/// right ones, and no user name, password or token reaches their Debug or JSON form.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::http::jwt::test_token;
    use crate::proptest_support::{mutated, text_input};
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::LazyLock;

    static HEADERS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let token = test_token(
            &json!({"aud": "myreg.azurecr.io", "exp": 1_700_004_500, "grant_type": "refresh_token"}),
        );
        vec![
            format!("Basic {}", STANDARD.encode(format!("{NULL_GUID}:{token}"))),
            format!(
                "Basic {}",
                STANDARD.encode("3f8a1c2e-9b4d-4e6f-8a7b-1c2d3e4f5a6b:Xy8Q~s3cr3t")
            ),
            "Basic bXlyZWc6cGFzc3dvcmQ".to_string(),
            format!("Bearer {token}"),
            "Negotiate YIIGhgYJKoZIhvcSAQICAQBu".to_string(),
        ]
    });

    static FORMS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        let token = test_token(&json!({"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "exp": 1}));
        vec![
            format!("grant_type=access_token&service=myreg.azurecr.io&tenant=72f988bf-86f1-41af-91ab-2d7cd011db47&access_token={token}").into_bytes(),
            format!("grant_type=refresh_token&service=myreg.azurecr.io&scope=repository%3Ateam%2Fapp%3Apull&scope=registry:catalog:*&refresh_token={token}&client_id=docker").into_bytes(),
            b"grant_type=password&service=myreg.azurecr.io&scope=repository:app:pull+repository:lib:pull&username=00000000-0000-0000-0000-000000000000&password=Xy8Q%7Es3cr3t".to_vec(),
        ]
    });

    /// A secret that cannot occur by chance in the facts: none of their fields holds a `!`.
    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9~._-]{2,16}![A-Za-z0-9~._:-]{2,16}"
    }

    fn shown<T: std::fmt::Debug + Serialize>(facts: &T) -> String {
        format!("{facts:?}{}", serde_json::to_string(facts).unwrap())
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn describe_never_panics(value in text_input(&HEADERS.iter().map(String::as_str).collect::<Vec<_>>())) {
            if let Some(facts) = describe(&value) {
                // The scheme is echoed into logs: a token, or "invalid".
                prop_assert!(facts.scheme.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)), "{:?}", facts.scheme);
            }
        }

        #[test]
        fn describe_form_body_never_panics(
            body in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(FORMS.clone())],
        ) {
            let facts = describe_form_body(&body);
            prop_assert!(facts.scopes.len() <= MAX_SCOPES);
        }

        /// Basic credentials of any shape: the right facts, and neither the user name, the
        /// password nor their encoding in the output.
        #[test]
        fn basic_facts_without_leaks(
            user in prop_oneof![
                Just(NULL_GUID.to_string()),
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9A-F]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                secret().prop_map(|s| s.replace(':', "")),
            ],
            password in prop_oneof![Just(String::new()), secret()],
            scheme in "[bB][aA][sS][iI][cC]",
            gap in "[ \t]{1,3}",
            padded in any::<bool>(),
        ) {
            let mut encoded = STANDARD.encode(format!("{user}:{password}"));
            if !padded {
                encoded = encoded.trim_end_matches('=').to_string();
            }
            let facts = describe(&format!("{scheme}{gap}{encoded}"));
            prop_assert!(facts.is_some());
            let facts = facts.unwrap();
            prop_assert_eq!(facts.scheme.as_str(), "basic");
            prop_assert!(!facts.malformed);
            prop_assert_eq!(facts.username_kind, Some(UsernameKind::of(&user)));
            prop_assert_eq!(facts.empty_secret, password.is_empty());
            let out = shown(&facts);
            for s in [&user, &password, &encoded] {
                prop_assert!(s.len() < 4 || !out.contains(s.as_str()), "{} leaked in {}", s, out);
            }
        }

        /// Token-endpoint forms of any values: the facts reflect them, secrets only as flags.
        #[test]
        fn form_facts_without_leaks(
            grant_type in "[a-z_]{1,24}",
            service in any::<String>(),
            scopes in prop::collection::vec("[a-z]+:[a-z/]+:[a-z,*]+", 0..5),
            password in secret(),
            refresh in secret(),
            order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
        ) {
            let fields = [
                format!("grant_type={}", crate::proptest_support::percent_encode(&grant_type)),
                format!("service={}", crate::proptest_support::percent_encode(&service)),
                format!("scope={}", crate::proptest_support::percent_encode(&scopes.join(" "))),
                format!("password={}", crate::proptest_support::percent_encode(&password)),
                format!("refresh_token={}", crate::proptest_support::percent_encode(&refresh)),
            ];
            let body = order.iter().map(|&i| fields[i].as_str()).collect::<Vec<_>>().join("&");
            let facts = describe_form_body(body.as_bytes());
            prop_assert_eq!(facts.grant_type.as_deref(), Some(grant_type.as_str()));
            // Kept as sent (cut to 256 characters); an empty value is no value.
            let want_service = (!service.is_empty()).then(|| service.chars().take(256).collect::<String>());
            prop_assert_eq!(facts.service.clone(), want_service);
            prop_assert_eq!(&facts.scopes, &scopes);
            prop_assert!(facts.has_password && facts.has_refresh_token);
            let out = shown(&facts);
            prop_assert!(!out.contains(&password) && !out.contains(&refresh), "{}", out);
        }
    }
}
