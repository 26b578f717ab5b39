//! Parsers for what an HTTP exchange with a registry carries: authentication challenges,
//! registry error bodies, credentials (described, never kept), token claims and API paths.

pub mod challenge;
pub mod credentials;
pub mod jwt;
pub mod path;
pub mod registry_error;
