//! TLS record framing followed from headers alone, so that the stall check knows whether a
//! quiet server stopped inside a record.

use crate::tls::wire::RECORD_HEADER_LEN;

/// Follows TLS record framing without looking inside records: O(records), not O(bytes). A
/// server that goes quiet in the middle of a record was cut off mid-transfer, which is the
/// precise signal of a stall (an idle keep-alive connection always rests on a boundary).
#[derive(Debug, Default, Clone)]
pub struct RecordTracker {
    /// Bytes of the current record body still to come.
    remaining: usize,
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
}

impl RecordTracker {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (RECORD_HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == RECORD_HEADER_LEN {
                self.remaining = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                self.header_len = 0;
            }
        }
    }

    pub fn mid_record(&self) -> bool {
        self.remaining > 0 || self.header_len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::RecordTracker;

    #[test]
    fn record_tracker_follows_boundaries_across_reads() {
        let mut rec = vec![0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4];
        rec.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x02, 9, 9]);
        let mut t = RecordTracker::default();
        t.feed(&rec);
        assert!(!t.mid_record());
        // Split everywhere, one byte at a time.
        let mut t = RecordTracker::default();
        for (i, b) in rec.iter().enumerate() {
            t.feed(&[*b]);
            assert_eq!(
                t.mid_record(),
                i != 8 && i != rec.len() - 1,
                "after byte {i}"
            );
        }
        let mut t = RecordTracker::default();
        t.feed(&rec[..7]);
        assert!(t.mid_record());
    }
}

/// Properties of [`RecordTracker`] against a reference model that walks the whole stream at once:
/// however the stream is cut into reads (and whatever the bytes, hostile lengths included), the
/// tracker knows whether the stream rests inside a record, which is what stall detection trusts.
#[cfg(test)]
mod properties {
    use super::{RecordTracker, RECORD_HEADER_LEN};
    use crate::proptest_support::split;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// The model: from the start, hop from header to header; the stream is mid-record unless
    /// the last hop lands exactly on its end.
    fn mid_record(stream: &[u8]) -> bool {
        let mut pos = 0usize;
        while pos + RECORD_HEADER_LEN <= stream.len() {
            pos += RECORD_HEADER_LEN
                + usize::from(u16::from_be_bytes([stream[pos + 3], stream[pos + 4]]));
        }
        pos != stream.len()
    }

    /// A stream of well-formed records (type, version, length, body), as servers send.
    fn records() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            (
                prop::sample::select(vec![0x14u8, 0x15, 0x16, 0x17]),
                0usize..3000,
            ),
            0..12,
        )
        .prop_map(|records| {
            let mut out = Vec::new();
            for (t, len) in records {
                out.extend_from_slice(&[t, 3, 3]);
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.resize(out.len() + len, 0xab);
            }
            out
        })
    }

    /// Real-shaped record streams, possibly cut short, or any bytes at all.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (records(), any::<Index>()).prop_map(|(r, cut)| {
                let cut = cut.index(r.len() + 1);
                r[..cut].to_vec()
            }),
            records(),
            prop::collection::vec(any::<u8>(), 0..2048),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        /// After every read, however the stream was cut, the tracker agrees with the model on
        /// everything received so far, and ends in the state one whole read gives.
        #[test]
        fn agrees_with_the_model_after_every_read(
            stream in stream(),
            cuts in prop::collection::vec(any::<Index>(), 0..24),
        ) {
            let mut t = RecordTracker::default();
            let mut seen = 0;
            for piece in split(&stream, &cuts) {
                t.feed(&piece);
                seen += piece.len();
                prop_assert_eq!(t.mid_record(), mid_record(&stream[..seen]), "after {} bytes", seen);
            }
            let mut whole = RecordTracker::default();
            whole.feed(&stream);
            prop_assert_eq!(
                (t.remaining, t.header, t.header_len),
                (whole.remaining, whole.header, whole.header_len)
            );
        }
    }
}
