//! TEMPORARY lead stub replaced by the parsers branch at merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub versions: Vec<String>,
    pub cipher_suites: usize,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    Incomplete,
    NotTls,
    Invalid(&'static str),
}
pub fn parse(_buf: &[u8]) -> Result<ClientHello, HelloError> {
    Err(HelloError::Invalid("stub"))
}
pub fn looks_like_tls(first: &[u8]) -> bool {
    first.len() >= 2 && first[0] == 0x16 && first[1] == 0x03
}
