//! Parsers for what an HTTP exchange with a registry carries: authentication challenges,
//! registry error bodies, credentials (described, never kept) and token claims.

pub mod challenge;
pub mod credentials;
pub mod jwt;
pub mod registry_error;
