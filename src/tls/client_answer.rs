//! The client's answer to the server's first flight: did it go on with the handshake, or refuse
//! it (most often because it does not trust the certificate it was shown)?
//!
//! Read from the client's side of a passthrough tunnel, record headers only, for the first few
//! records after the ServerHello; nothing is decrypted.
//!
//! * TLS 1.2: the client's answer is in the clear. A handshake record (ClientKeyExchange, or
//!   its Certificate) means it accepted the server's certificate; an alert (`bad_certificate`,
//!   `unknown_ca`, `certificate_expired`, …) means it refused, and the alert names why.
//! * TLS 1.3: everything after the ServerHello is encrypted, so the answer is read from record
//!   sizes. A client that goes on sends its Finished (possibly after a ChangeCipherSpec kept for
//!   middlebox compatibility, and after a Certificate when the server asked for one); a client
//!   that refuses sends one encrypted alert and closes. The encrypted alert is 2 alert bytes, 1
//!   content-type byte and the AEAD tag: 19 bytes with every TLS 1.3 suite but AES-CCM-8 (11).
//!   The shortest encrypted Finished is 4 (handshake header) + 32 (SHA-256 verify_data) + 1 + 8
//!   (CCM-8 tag) = 45 bytes ([`MIN_TLS13_FINISHED`]); with the usual 16-byte tags it is 53. So
//!   an encrypted record shorter than 45 bytes is not a Finished. It is not yet a refusal
//!   either: a client asked for a certificate that has none sends an empty Certificate (25
//!   bytes) before its Finished. Only a short record followed by the end of the stream, with
//!   nothing else in between, is taken as a refusal.
//!
//! The watch is bounded ([`MAX_WATCHED_RECORDS`]): a verdict is reached on the first record in
//! every ordinary handshake, and the tunnel goes back to the bulk copy path as soon as it is.

use super::server_hello::{alert_description, alert_level};
use super::wire::{
    CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE,
    RECORD_HEADER_LEN,
};

/// Shortest encrypted record that can carry a TLS 1.3 Finished (see the module documentation).
pub const MIN_TLS13_FINISHED: usize = 4 + 32 + 1 + 8;

/// Client records looked at before the watch gives up without a verdict (and the tunnel is
/// treated as healthy). CCS, an optional Certificate, CertificateVerify and Finished fit.
pub const MAX_WATCHED_RECORDS: usize = 4;

/// How a client refused the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A plaintext alert (TLS 1.2, or a TLS 1.3 client before its handshake keys).
    Alert { level: String, description: String },
    /// One encrypted record too short to be a Finished, then the end of the stream (TLS 1.3),
    /// or an alert after the client's ChangeCipherSpec (TLS 1.2): an alert we cannot read.
    EncryptedAlert { payload_len: usize },
    /// The client closed without sending anything after the server's flight.
    Closed,
}

/// What the client's bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not decided yet: keep watching.
    Pending,
    /// The client went on with the handshake (or the watch gave up): stop watching.
    Accepted,
    Refused(Refusal),
}

/// Follows the client's records after the ServerHello. Feed it every client byte read after
/// the server's first flight, and tell it when the client's stream ends.
#[derive(Debug, Clone)]
pub struct ClientAnswer {
    tls13: bool,
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
    /// Content type and body bytes still to come of the current record.
    current: Option<(u8, usize)>,
    /// First bytes of the current alert's body (level, description).
    alert: [u8; 2],
    alert_len: usize,
    /// Records whose header was read, ChangeCipherSpec included.
    records: usize,
    /// The client sent its ChangeCipherSpec: under TLS 1.2 what follows is encrypted.
    ccs: bool,
    /// Payload length of a TLS 1.3 encrypted record too short to be a Finished, when it is the
    /// last thing the client sent.
    short: Option<usize>,
    /// Whether anything other than ChangeCipherSpec came.
    anything: bool,
    decided: Option<Answer>,
}

impl ClientAnswer {
    /// `tls13`: the version the server chose (from its ServerHello) is TLS 1.3.
    pub fn new(tls13: bool) -> Self {
        ClientAnswer {
            tls13,
            header: [0; RECORD_HEADER_LEN],
            header_len: 0,
            current: None,
            alert: [0; 2],
            alert_len: 0,
            records: 0,
            ccs: false,
            short: None,
            anything: false,
            decided: None,
        }
    }

    /// Take more client bytes. Once decided, the verdict does not change.
    pub fn feed(&mut self, mut data: &[u8]) -> Answer {
        while self.decided.is_none() && !data.is_empty() {
            match self.current {
                Some((kind, remaining)) => {
                    let n = remaining.min(data.len());
                    if kind == CONTENT_ALERT && self.alert_len < 2 {
                        let k = n.min(2 - self.alert_len);
                        self.alert[self.alert_len..self.alert_len + k].copy_from_slice(&data[..k]);
                        self.alert_len += k;
                        if self.alert_len == 2 {
                            self.decided = Some(Answer::Refused(Refusal::Alert {
                                level: alert_level(self.alert[0]),
                                description: alert_description(self.alert[1]),
                            }));
                        }
                    }
                    data = &data[n..];
                    self.current = (remaining > n).then_some((kind, remaining - n));
                }
                None => {
                    let n = (RECORD_HEADER_LEN - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                    self.header_len += n;
                    data = &data[n..];
                    if self.header_len == RECORD_HEADER_LEN {
                        self.header_len = 0;
                        let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                        self.record(self.header[0], len);
                    }
                }
            }
        }
        self.answer()
    }

    /// The client's stream ended (end of stream or reset) while the watch was on.
    pub fn end(&mut self) -> Answer {
        if self.decided.is_none() {
            self.decided = Some(match self.short {
                Some(payload_len) if self.current.is_none() && self.header_len == 0 => {
                    Answer::Refused(Refusal::EncryptedAlert { payload_len })
                }
                _ if !self.anything && self.current.is_none() && self.header_len == 0 => {
                    Answer::Refused(Refusal::Closed)
                }
                // A record cut short, or a handshake message the client did send: not a
                // refusal this watch can name.
                _ => Answer::Accepted,
            });
        }
        self.answer()
    }

    /// The server's stream ended while the watch was on. A server that closes after its flight
    /// is most often answering the client's alert (it got there first: the client's own close
    /// may not have been read yet), so a short encrypted record before it is the same refusal
    /// as at the client's end. Anything else the watch cannot name.
    pub fn server_ended(&mut self) -> Answer {
        if self.decided.is_none() {
            self.decided = Some(match self.short {
                Some(payload_len) if self.current.is_none() && self.header_len == 0 => {
                    Answer::Refused(Refusal::EncryptedAlert { payload_len })
                }
                _ => Answer::Accepted,
            });
        }
        self.answer()
    }

    /// The verdict so far.
    pub fn answer(&self) -> Answer {
        self.decided.clone().unwrap_or(Answer::Pending)
    }

    /// A record header was read.
    fn record(&mut self, kind: u8, len: usize) {
        self.records += 1;
        self.current = (len > 0).then_some((kind, len));
        self.alert_len = 0;
        if kind != CONTENT_CHANGE_CIPHER_SPEC {
            self.anything = true;
        }
        let verdict = match kind {
            CONTENT_CHANGE_CIPHER_SPEC => {
                self.ccs = true;
                None
            }
            // Read from the body (above); an alert record after the client's own CCS is
            // encrypted under TLS 1.2, and its size says nothing more.
            CONTENT_ALERT if self.ccs && !self.tls13 => {
                Some(Answer::Refused(Refusal::EncryptedAlert {
                    payload_len: len,
                }))
            }
            CONTENT_ALERT => None,
            CONTENT_APPLICATION_DATA if self.tls13 => {
                if self.short.is_some() || len >= MIN_TLS13_FINISHED {
                    // A Finished, or a second record after a short one: the client goes on.
                    Some(Answer::Accepted)
                } else {
                    self.short = Some(len);
                    None
                }
            }
            // TLS 1.3: a second ClientHello after a HelloRetryRequest; the real answer is
            // still to come.
            CONTENT_HANDSHAKE if self.tls13 && self.short.is_none() => None,
            // TLS 1.2: ClientKeyExchange or Certificate: the certificate was accepted.
            _ => Some(Answer::Accepted),
        };
        if let Some(v) = verdict {
            self.decided = Some(v);
        } else if self.records >= MAX_WATCHED_RECORDS && kind != CONTENT_ALERT {
            self.decided = Some(Answer::Accepted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u8, len: usize) -> Vec<u8> {
        let mut v = vec![kind, 3, 3];
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.resize(RECORD_HEADER_LEN + len, 0xaa);
        v
    }

    fn alert(level: u8, description: u8) -> Vec<u8> {
        vec![CONTENT_ALERT, 3, 3, 0, 2, level, description]
    }

    const CCS: [u8; 6] = [CONTENT_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1];

    /// Feed `stream` one byte at a time as well as whole: the verdict must not depend on how
    /// the reads cut it.
    fn both_ways(tls13: bool, stream: &[u8], ended: bool) -> Answer {
        let mut whole = ClientAnswer::new(tls13);
        let mut a = whole.feed(stream);
        let mut bytewise = ClientAnswer::new(tls13);
        let mut b = Answer::Pending;
        for byte in stream {
            b = bytewise.feed(std::slice::from_ref(byte));
        }
        if ended {
            a = whole.end();
            b = bytewise.end();
        }
        assert_eq!(a, b, "verdict depends on read boundaries");
        a
    }

    #[test]
    fn tls12_plaintext_alert_is_a_refusal_naming_it() {
        // fatal (2) unknown_ca (48), then the client closes.
        assert_eq!(
            both_ways(false, &alert(2, 48), false),
            Answer::Refused(Refusal::Alert {
                level: "fatal".into(),
                description: "unknown_ca".into()
            })
        );
        // bad_certificate (42).
        assert!(matches!(
            both_ways(false, &alert(2, 42), true),
            Answer::Refused(Refusal::Alert { description, .. }) if description == "bad_certificate"
        ));
    }

    #[test]
    fn tls12_client_key_exchange_is_acceptance() {
        // ClientKeyExchange (an ECDHE point), CCS, encrypted Finished.
        let mut s = rec(CONTENT_HANDSHAKE, 37);
        s.extend_from_slice(&CCS);
        s.extend_from_slice(&rec(CONTENT_HANDSHAKE, 40));
        assert_eq!(both_ways(false, &s, false), Answer::Accepted);
        assert_eq!(
            both_ways(false, &rec(CONTENT_HANDSHAKE, 37)[..3], false),
            Answer::Pending
        );
    }

    #[test]
    fn tls12_alert_after_ccs_is_encrypted() {
        // An abbreviated handshake: the client's CCS, then an encrypted alert.
        let mut s = CCS.to_vec();
        s.extend_from_slice(&rec(CONTENT_ALERT, 26));
        assert_eq!(
            both_ways(false, &s, false),
            Answer::Refused(Refusal::EncryptedAlert { payload_len: 26 })
        );
    }

    #[test]
    fn tls13_short_record_then_close_is_a_refusal() {
        // What Go sends: CCS, then the alert under the handshake key (2 + 1 + 16 bytes).
        let mut s = CCS.to_vec();
        s.extend_from_slice(&rec(CONTENT_APPLICATION_DATA, 19));
        assert_eq!(both_ways(true, &s, false), Answer::Pending);
        assert_eq!(
            both_ways(true, &s, true),
            Answer::Refused(Refusal::EncryptedAlert { payload_len: 19 })
        );
        // Without the CCS (rustls), likewise.
        assert_eq!(
            both_ways(true, &rec(CONTENT_APPLICATION_DATA, 19), true),
            Answer::Refused(Refusal::EncryptedAlert { payload_len: 19 })
        );
    }

    #[test]
    fn tls13_short_record_then_server_close_is_the_same_refusal() {
        // The server (a TLS-inspecting proxy) read the client's alert and closed before the
        // client's own close was read.
        let mut s = CCS.to_vec();
        s.extend_from_slice(&rec(CONTENT_APPLICATION_DATA, 19));
        let mut a = ClientAnswer::new(true);
        assert_eq!(a.feed(&s), Answer::Pending);
        assert_eq!(
            a.server_ended(),
            Answer::Refused(Refusal::EncryptedAlert { payload_len: 19 })
        );
        // A server that closes before the client said anything, or in the middle of a client
        // record, is not a client refusal.
        assert_eq!(ClientAnswer::new(true).server_ended(), Answer::Accepted);
        let mut cut = ClientAnswer::new(true);
        cut.feed(&rec(CONTENT_APPLICATION_DATA, 19)[..10]);
        assert_eq!(cut.server_ended(), Answer::Accepted);
    }

    #[test]
    fn tls13_finished_is_acceptance_at_the_threshold() {
        let mut s = CCS.to_vec();
        s.extend_from_slice(&rec(CONTENT_APPLICATION_DATA, 53));
        assert_eq!(both_ways(true, &s, false), Answer::Accepted);
        assert_eq!(
            both_ways(
                true,
                &rec(CONTENT_APPLICATION_DATA, MIN_TLS13_FINISHED),
                false
            ),
            Answer::Accepted
        );
        assert_eq!(
            both_ways(
                true,
                &rec(CONTENT_APPLICATION_DATA, MIN_TLS13_FINISHED - 1),
                false
            ),
            Answer::Pending
        );
    }

    #[test]
    fn tls13_empty_certificate_then_finished_is_acceptance() {
        // A client asked for a certificate that has none: empty Certificate (25), Finished.
        let mut s = rec(CONTENT_APPLICATION_DATA, 25);
        s.extend_from_slice(&rec(CONTENT_APPLICATION_DATA, 53));
        assert_eq!(both_ways(true, &s, true), Answer::Accepted);
    }

    #[test]
    fn tls13_plaintext_alert_is_read() {
        assert!(matches!(
            both_ways(true, &alert(2, 46), false),
            Answer::Refused(Refusal::Alert { description, .. }) if description == "certificate_unknown"
        ));
    }

    #[test]
    fn silent_close_and_cut_records() {
        assert_eq!(both_ways(true, &[], true), Answer::Refused(Refusal::Closed));
        assert_eq!(
            both_ways(false, &CCS, true),
            Answer::Refused(Refusal::Closed)
        );
        // A record cut short by the end: nothing this watch can name.
        assert_eq!(
            both_ways(true, &rec(CONTENT_APPLICATION_DATA, 19)[..10], true),
            Answer::Accepted
        );
    }

    #[test]
    fn watch_is_bounded() {
        // A HelloRetryRequest's second ClientHello, then more plaintext handshakes: the watch
        // stops after MAX_WATCHED_RECORDS records.
        let mut s = Vec::new();
        for _ in 0..MAX_WATCHED_RECORDS {
            s.extend_from_slice(&rec(CONTENT_HANDSHAKE, 10));
        }
        assert_eq!(both_ways(true, &s, false), Answer::Accepted);
        let mut ccs = Vec::new();
        for _ in 0..MAX_WATCHED_RECORDS {
            ccs.extend_from_slice(&CCS);
        }
        assert_eq!(both_ways(true, &ccs, false), Answer::Accepted);
    }

    #[test]
    fn verdict_is_final() {
        let mut a = ClientAnswer::new(false);
        assert!(matches!(a.feed(&alert(2, 48)), Answer::Refused(_)));
        assert!(matches!(
            a.feed(&rec(CONTENT_HANDSHAKE, 5)),
            Answer::Refused(_)
        ));
        assert!(matches!(a.end(), Answer::Refused(_)));
    }
}
