//! TLS: observation of handshakes without decrypting them, and (with a local CA) interception.
