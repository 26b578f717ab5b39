//! TLS: observation of handshakes without decrypting them, and (with a local CA) interception.

pub mod client_hello;
pub mod server_hello;
