//! What the integration tests share: a loopback regdoc with its records captured (`proxy`), a
//! loopback registry speaking ACR's protocol (`acr`), a DNS server (`dns`), addresses with a
//! known fate (`net`), regdoc as a signalled child with its log polled (`child`), secret scans (`secrets`), a client's TLS configuration (`tls`) and regdoc as a child with its metrics served,
//! with the Prometheus programs found or skipped (`prom`). A test binary declares `mod common;`.

// Every test binary compiles all of it and uses a part.
#![allow(dead_code)]

pub mod acr;
pub mod child;
pub mod dns;
pub mod net;
pub mod prom;
pub mod proxy;
pub mod secrets;
pub mod tls;
