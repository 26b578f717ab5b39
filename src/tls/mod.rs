//! TLS: observation of handshakes without decrypting them, and (with a local CA) interception.
//!
//! [`client_hello`] reads what a client offers (SNI, ALPN, versions); [`server_hello`] reads
//! what the server chose, or the alert it sent instead; [`client_answer`] reads whether the client
//! went on after the server's first flight or refused it. All work on the raw first bytes of a
//! stream and never decrypt anything.

pub mod client_answer;
pub mod client_hello;
pub mod server_hello;
pub mod wire;

/// Bytes a hello parser will look at before giving up. Real ClientHellos are a few hundred bytes
/// (about 1.8 KiB with post-quantum key shares); 16 KiB is one full record.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;

/// Why a hello could not be read (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The bytes so far are a valid start; read more and call the parser again. Never returned
    /// once [`MAX_HELLO_BYTES`] bytes have been given.
    #[error("incomplete TLS hello: more bytes needed")]
    Incomplete,
    /// The stream does not start with a TLS record of the expected kind.
    #[error("not TLS")]
    NotTls,
    /// TLS-shaped but malformed.
    #[error("invalid TLS hello: {0}")]
    Invalid(&'static str),
}
