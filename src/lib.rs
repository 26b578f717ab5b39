//! regdoc — registry doctor.
//!
//! A forwarding proxy for container registry clients (the Docker daemon through `HTTPS_PROXY`,
//! skopeo, podman, containerd) that records every phase of every connection and says, for every
//! failure, which documented cause it is, how to fix it and what the client printed.
//!
//! The code is kept in three kinds, apart:
//! * transport ([`net`], [`proxy`], [`server`]): sockets, deadlines, copying bytes;
//! * observation ([`tls`], [`http`], [`endpoint`], [`observe`]): bytes into typed facts;
//! * diagnosis ([`diagnose`]): facts into causes, pure and tested without sockets.
//!
//! Logging ([`record`], [`logging`]) sits at the edge.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod diagnose;
pub mod endpoint;
pub mod http;
pub mod intercept;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod policy;
/// Strategies for the parsers' property tests (near-valid inputs from real samples).
#[cfg(test)]
pub(crate) mod proptest_support;
pub mod proxy;
pub mod record;
pub mod redact;
pub mod server;
pub mod shutdown;
pub mod tls;

pub use server::run;
