//! A tiny authoritative DNS server on a loopback address, for the daemon and for regdoc.
//!
//! It answers A queries for the names of its zone and NXDOMAIN for every other name, so no
//! query of a test ever leaves the machine. It speaks just enough of RFC 1035 over UDP for the
//! Go resolver (dockerd) and hickory (regdoc): one question per query, no compression in
//! questions, EDNS ignored.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running server; stops when dropped.
pub struct ZoneDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZoneDns {
    /// Serve `zone` (lower-case names without the trailing dot) on `addr` (UDP).
    pub fn start(addr: SocketAddr, zone: BTreeMap<String, Ipv4Addr>) -> std::io::Result<ZoneDns> {
        let sock = UdpSocket::bind(addr)?;
        // A short read timeout lets the thread notice `stop` without a wake-up packet.
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &zone) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Ok(ZoneDns {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ZoneDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Build the reply to one query, or `None` for bytes that are not a query.
fn answer(q: &[u8], zone: &BTreeMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    if qdcount != 1 {
        return None;
    }
    // Walk the question name.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = q.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    if q.len() < question_end {
        return None;
    }
    let name = labels.join(".");
    let found = zone.get(&name);
    let rd = q[2] & 0x01;
    let mut r = Vec::with_capacity(question_end + 16);
    r.extend_from_slice(&q[0..2]);
    // QR=1, AA=1, RD copied; RA=1; RCODE NXDOMAIN (3) when the name is not in the zone.
    r.push(0x84 | rd);
    r.push(0x80 | if found.is_some() { 0 } else { 3 });
    r.extend_from_slice(&1u16.to_be_bytes());
    let with_answer = found.is_some() && qtype == 1;
    r.extend_from_slice(&(with_answer as u16).to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&q[12..question_end]);
    if let (true, Some(ip)) = (with_answer, found) {
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        r.extend_from_slice(&5u32.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as dig sends it: id 0xbeef, RD, one question, an EDNS OPT record.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    fn zone() -> BTreeMap<String, Ipv4Addr> {
        [("r.azurecr.io".to_string(), Ipv4Addr::new(10, 231, 0, 2))].into()
    }

    #[test]
    fn answers_a_records_of_the_zone() {
        let r = answer(&query("R.azurecr.io", 1), &zone()).unwrap();
        assert_eq!(&r[0..2], &[0xbe, 0xef]);
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 231, 0, 2]);
    }

    #[test]
    fn aaaa_of_a_zone_name_is_empty_noerror() {
        let r = answer(&query("r.azurecr.io", 28), &zone()).unwrap();
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
    }

    #[test]
    fn other_names_are_nxdomain() {
        let r = answer(&query("nope.azurecr.io", 1), &zone()).unwrap();
        assert_eq!(r[3] & 0x0f, 3);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
    }

    #[test]
    fn garbage_gets_no_reply() {
        assert!(answer(&[0u8; 5], &zone()).is_none());
        let mut truncated = query("r.azurecr.io", 1);
        truncated.truncate(20);
        assert!(answer(&truncated, &zone()).is_none());
        let mut response = query("r.azurecr.io", 1);
        response[2] |= 0x80;
        assert!(answer(&response, &zone()).is_none());
    }
}
