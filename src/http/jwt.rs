//! Claims of registry tokens (JWT), decoded without verification and without keeping the token.
//!
//! regdoc only reads claims to explain a refusal (expired, not yet valid, issued for another
//! registry, no `access` entry for the repository). It never checks signatures: it is not the
//! one who trusts the token.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest token regdoc will decode; real ACR tokens are 1–4 KiB.
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Entries kept from list claims (`access`, `roles`, `actions`).
const MAX_LIST: usize = 64;

/// base64url with or without `=` padding (JWTs omit it, some clients add it).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One `access` entry of a registry token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// `permissions` claim of an ACR refresh token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    #[serde(rename = "notActions", default, skip_serializing_if = "Vec::is_empty")]
    pub not_actions: Vec<String>,
}

/// The claims regdoc logs and reasons about. The signature and any identifiers that could be
/// replayed (`jti`) or name a person (`sub`, `upn`, `oid`) are never kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// A string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `refresh_token` or `access_token` in ACR tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// What an access token grants: `[{type, name, actions}]`. Present and empty means the
    /// token server granted nothing for the requested scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<Access>>,
    /// Directory (tenant) id: `tenant` in ACR tokens, `tid` in Entra ID tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// ACR refresh token permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    /// Role names (ACR refresh tokens, Entra ID application tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl Claims {
    /// Seconds until `exp` at `now` (Unix seconds); negative once expired.
    pub fn expires_in(&self, now: i64) -> Option<i64> {
        self.exp.map(|exp| exp.saturating_sub(now))
    }

    /// Whether the token is expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.exp.is_some_and(|exp| exp <= now)
    }

    /// Whether the token is not yet valid at `now` (clock skew shows up here).
    pub fn is_not_yet_valid(&self, now: i64) -> bool {
        self.nbf.is_some_and(|nbf| nbf > now)
    }

    /// Whether `aud` is or contains `audience` (case-insensitive: it is a host name in ACR).
    pub fn has_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Some(Value::String(a)) => a.eq_ignore_ascii_case(audience),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| a.eq_ignore_ascii_case(audience)),
            _ => false,
        }
    }

    /// Actions an access token grants on `repository`, or `None` if it has no `access` claim.
    pub fn actions_for(&self, repository: &str) -> Option<Vec<String>> {
        let access = self.access.as_ref()?;
        Some(
            access
                .iter()
                .filter(|a| a.kind == "repository" && a.name == repository)
                .flat_map(|a| a.actions.iter().cloned())
                .collect(),
        )
    }
}

/// Whether `s` has the shape of a signed JWT: three base64url segments (the signature may be
/// empty for `alg: none`) whose first decodes to a JSON object.
pub fn looks_like_jwt(s: &str) -> bool {
    if s.len() > MAX_TOKEN_LEN {
        return false;
    }
    let mut parts = s.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].iter().all(|p| is_b64url(p))
    {
        return false;
    }
    B64URL
        .decode(header)
        .ok()
        .is_some_and(|h| h.first() == Some(&b'{') && h.last() == Some(&b'}'))
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

/// Decode the claims of a JWT without verifying it. Accepts padded or unpadded base64url and
/// surrounding whitespace; `None` if it is not a JWT or the payload is not a JSON object.
pub fn decode_claims(token: &str) -> Option<Claims> {
    let token = token.trim();
    if !looks_like_jwt(token) {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    claims_from_value(&value)
}

/// Claims from a payload, field by field, so that one odd claim (a float `exp`, an `aud` of
/// another type, an unknown shape) does not lose the others.
fn claims_from_value(v: &Value) -> Option<Claims> {
    let obj = v.as_object()?;
    let int = |k: &str| -> Option<i64> {
        let n = obj.get(k)?;
        n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
    };
    let string = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let strings = |v: &Value| -> Option<Vec<String>> {
        Some(
            v.as_array()?
                .iter()
                .filter_map(Value::as_str)
                .take(MAX_LIST)
                .map(str::to_string)
                .collect(),
        )
    };
    let aud = obj
        .get("aud")
        .filter(|a| a.is_string() || a.as_array().is_some_and(|l| l.iter().all(Value::is_string)))
        .cloned();
    let access = obj.get("access").and_then(Value::as_array).map(|list| {
        list.iter()
            .take(MAX_LIST)
            .filter_map(|a| {
                Some(Access {
                    kind: a.get("type")?.as_str()?.to_string(),
                    name: a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    actions: a.get("actions").and_then(strings).unwrap_or_default(),
                })
            })
            .collect()
    });
    let permissions = obj.get("permissions").and_then(|p| {
        p.as_object().map(|_| Permissions {
            actions: p.get("actions").and_then(strings).unwrap_or_default(),
            not_actions: p.get("notActions").and_then(strings).unwrap_or_default(),
        })
    });
    Some(Claims {
        exp: int("exp"),
        nbf: int("nbf"),
        iat: int("iat"),
        aud,
        iss: string("iss"),
        grant_type: string("grant_type"),
        access,
        tenant: string("tenant").or_else(|| string("tid")),
        permissions,
        roles: obj.get("roles").and_then(strings),
    })
}

/// Build an unsigned test token around `payload`.
#[cfg(test)]
pub(crate) fn test_token(payload: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"ABCD:EFGH"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{body}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shape of an ACR refresh token (Azure/acr docs/AAD-OAuth.md sample).
    pub(crate) fn acr_refresh_payload() -> Value {
        json!({
            "jti": "365ea0e4-7a4e-4a6f-8d53-1c4a2f1b2d9e",
            "sub": "user@contoso.com",
            "nbf": 1_700_000_000,
            "exp": 1_700_002_089,
            "iat": 1_700_000_000,
            "iss": "Azure Container Registry",
            "aud": "myreg.azurecr.io",
            "version": "1.0",
            "grant_type": "refresh_token",
            "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "permissions": {"actions": ["*"], "notActions": []},
            "roles": []
        })
    }

    /// Shape of an ACR access token.
    pub(crate) fn acr_access_payload() -> Value {
        json!({
            "jti": "b3f1c2d4-0000-4000-8000-000000000001",
            "sub": "user@contoso.com",
            "nbf": 1_700_000_000,
            "exp": 1_700_004_500,
            "iat": 1_700_000_000,
            "iss": "Azure Container Registry",
            "aud": "myreg.azurecr.io",
            "version": "1.0",
            "grant_type": "access_token",
            "access": [
                {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
                {"type": "registry", "name": "catalog", "actions": ["*"]}
            ]
        })
    }

    #[test]
    fn acr_access_token() {
        let claims = decode_claims(&test_token(&acr_access_payload())).unwrap();
        assert_eq!(claims.exp, Some(1_700_004_500));
        assert_eq!(claims.grant_type.as_deref(), Some("access_token"));
        assert_eq!(claims.iss.as_deref(), Some("Azure Container Registry"));
        assert!(claims.has_audience("MyReg.azurecr.io"));
        assert!(!claims.has_audience("other.azurecr.io"));
        assert_eq!(
            claims.actions_for("team/app"),
            Some(vec!["pull".to_string(), "push".to_string()])
        );
        assert_eq!(claims.actions_for("other"), Some(vec![]));
        assert_eq!(claims.access.as_ref().unwrap()[1].kind, "registry");
        assert_eq!(claims.expires_in(1_700_004_000), Some(500));
        assert!(claims.is_expired(1_700_004_500));
        assert!(!claims.is_expired(1_700_004_499));
        assert!(claims.is_not_yet_valid(1_699_999_999));
    }

    #[test]
    fn acr_refresh_token() {
        let claims = decode_claims(&test_token(&acr_refresh_payload())).unwrap();
        assert_eq!(claims.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(
            claims.tenant.as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(claims.permissions.as_ref().unwrap().actions, vec!["*"]);
        assert_eq!(claims.roles, Some(vec![]));
        assert_eq!(claims.access, None);
        assert_eq!(claims.actions_for("x"), None);
        // Personal or replayable identifiers are not kept.
        let json = serde_json::to_string(&claims).unwrap();
        assert!(!json.contains("user@contoso.com"));
        assert!(!json.contains("365ea0e4"));
    }

    #[test]
    fn entra_token_with_audience_list_and_tid() {
        let claims = decode_claims(&test_token(&json!({
            "aud": ["https://management.azure.com/", "https://containerregistry.azure.net"],
            "tid": "11111111-2222-3333-4444-555555555555",
            "exp": 1.7e9,
            "upn": "someone@example.com",
            "roles": ["AcrPull"]
        })))
        .unwrap();
        assert!(claims.has_audience("https://containerregistry.azure.net"));
        assert_eq!(
            claims.tenant.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(claims.exp, Some(1_700_000_000));
        assert_eq!(claims.roles, Some(vec!["AcrPull".to_string()]));
    }

    #[test]
    fn padding_and_whitespace_are_tolerated() {
        let payload = json!({"exp": 5, "aud": "a"});
        let token = test_token(&payload);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        while !parts[1].len().is_multiple_of(4) {
            parts[1].push('=');
        }
        let padded = parts.join(".");
        assert_ne!(padded, token);
        assert_eq!(decode_claims(&padded).unwrap().exp, Some(5));
        assert_eq!(
            decode_claims(&format!(" {token}\r\n")).unwrap().exp,
            Some(5)
        );
    }

    #[test]
    fn odd_claims_do_not_lose_the_others() {
        let claims = decode_claims(&test_token(&json!({
            "exp": "soon",
            "aud": 42,
            "iat": 7,
            "access": [{"name": "no type"}, {"type": "repository", "name": "a", "actions": "pull"}],
        })))
        .unwrap();
        assert_eq!(claims.exp, None);
        assert_eq!(claims.aud, None);
        assert_eq!(claims.iat, Some(7));
        let access = claims.access.unwrap();
        assert_eq!(access.len(), 1);
        assert!(access[0].actions.is_empty());
    }

    #[test]
    fn not_jwts() {
        for s in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJub25lIn0..sig",
            "Zm9v.eyJleHAiOjF9.sig", // header is not JSON
            "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.si g",
            "00000000-0000-0000-0000-000000000000",
            "p@ssw0rd.with.dots",
        ] {
            assert!(!looks_like_jwt(s), "{s:?}");
            assert_eq!(decode_claims(s), None, "{s:?}");
        }
        // JSON but not an object.
        assert_eq!(decode_claims("eyJhbGciOiJub25lIn0.WzEsMl0.sig"), None);
        // Unsigned tokens have an empty signature segment.
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJleHAiOjF9."));
        assert_eq!(
            decode_claims("eyJhbGciOiJub25lIn0.eyJleHAiOjF9.")
                .unwrap()
                .exp,
            Some(1)
        );
        assert!(!looks_like_jwt(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }
}

/// Properties of the claims decoder: no text panics it, any JSON payload is read field by field
/// without losing the others, and the token's encoding (padding, whitespace) does not matter.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::{json_value, text_input};
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::LazyLock;

    static SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| {
        vec![
            test_token(&tests::acr_refresh_payload()),
            test_token(&tests::acr_access_payload()),
            "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.".to_string(),
            "eyJhbGciOiJub25lIn0.eyJleHAiOjEsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkifV19."
                .to_string(),
        ]
    });

    fn seeds() -> Vec<&'static str> {
        SEEDS.iter().map(String::as_str).collect()
    }

    fn access() -> impl Strategy<Value = Vec<Access>> {
        prop::collection::vec(
            (
                any::<String>(),
                any::<String>(),
                prop::collection::vec(any::<String>(), 0..4),
            )
                .prop_map(|(kind, name, actions)| Access {
                    kind,
                    name,
                    actions,
                }),
            0..6,
        )
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn never_panics(token in text_input(&seeds())) {
            let looks = looks_like_jwt(&token);
            if decode_claims(&token).is_some() {
                prop_assert!(looks || token.trim() != token);
            }
        }

        /// Any JSON payload: claims exactly when it is an object, and no panic on odd types.
        #[test]
        fn any_payload_decodes_iff_it_is_an_object(payload in json_value()) {
            let claims = decode_claims(&test_token(&payload));
            prop_assert_eq!(claims.is_some(), payload.is_object());
        }

        /// The claims regdoc reasons about come back as the token server wrote them.
        #[test]
        fn claims_round_trip(
            exp in any::<i64>(),
            nbf in any::<i64>(),
            iat in any::<i64>(),
            aud in prop_oneof![
                any::<String>().prop_map(Value::from),
                prop::collection::vec(any::<String>(), 0..4).prop_map(Value::from),
            ],
            iss in any::<String>(),
            grant_type in any::<String>(),
            tenant in any::<String>(),
            access in access(),
            roles in prop::collection::vec(any::<String>(), 0..4),
            noise in any::<String>(),
        ) {
            let payload = json!({
                "exp": exp, "nbf": nbf, "iat": iat, "aud": aud, "iss": iss,
                "grant_type": grant_type, "tenant": tenant, "access": access, "roles": roles,
                "jti": noise, "sub": noise,
            });
            let claims = decode_claims(&test_token(&payload));
            prop_assert!(claims.is_some());
            let claims = claims.unwrap();
            prop_assert_eq!(claims.exp, Some(exp));
            prop_assert_eq!(claims.nbf, Some(nbf));
            prop_assert_eq!(claims.iat, Some(iat));
            prop_assert_eq!(claims.aud, Some(aud));
            prop_assert_eq!(claims.iss, Some(iss));
            prop_assert_eq!(claims.grant_type, Some(grant_type));
            prop_assert_eq!(claims.tenant, Some(tenant));
            prop_assert_eq!(claims.access, Some(access));
            prop_assert_eq!(claims.roles, Some(roles));
        }

        /// Padding of any segment and whitespace around the token change nothing.
        #[test]
        fn padding_and_whitespace_do_not_matter(
            payload in json_value(),
            pad in prop::collection::vec(any::<bool>(), 3),
            before in "[ \t\r\n]{0,3}",
            after in "[ \t\r\n]{0,3}",
        ) {
            let token = test_token(&payload);
            let padded: Vec<String> = token
                .split('.')
                .zip(&pad)
                .map(|(seg, &p)| {
                    let mut seg = seg.to_string();
                    while p && seg.len() % 4 != 0 {
                        seg.push('=');
                    }
                    seg
                })
                .collect();
            let variant = format!("{before}{}{after}", padded.join("."));
            prop_assert_eq!(decode_claims(&variant), decode_claims(&token));
        }
    }
}
