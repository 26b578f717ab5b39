//! Transport: name resolution, dialing (directly or through an upstream proxy) and tunnels.

pub mod dial;
pub mod interfaces;
pub mod prefixed;
pub mod probe;
pub mod resolve;
#[cfg(target_os = "linux")]
pub mod splice;
pub mod tunnel;
pub mod upstream;
