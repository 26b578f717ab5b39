//! Facts about the credentials a client presented. Never the credentials themselves.

use serde::Serialize;

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

/// Description of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialFacts {
    /// `basic`, `bearer` or another scheme, lower case.
    pub scheme: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_kind: Option<UsernameKind>,
    /// Claims of a bearer JWT (or of a JWT used as a Basic password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<crate::http::jwt::Claims>,
}
