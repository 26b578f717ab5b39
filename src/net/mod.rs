//! Transport: name resolution, dialing (directly or through an upstream proxy) and tunnels.

pub mod upstream;
