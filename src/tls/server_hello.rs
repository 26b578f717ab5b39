//! TEMPORARY lead stub replaced by the parsers branch at merge.
pub use super::client_hello::HelloError;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFirst {
    Hello { version: String, cipher: String },
    Alert { level: String, description: String },
}
pub fn parse(_buf: &[u8]) -> Result<ServerFirst, HelloError> {
    Err(HelloError::Invalid("stub"))
}
