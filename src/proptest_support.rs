//! Strategies shared by the property tests of the parsers (`mod properties` next to each one).
//!
//! Random bytes rarely get past a parser's first check, so most of the interesting inputs are
//! near-valid ones: a real sample (a captured ClientHello, an ACR error body, a challenge) with a
//! few bytes flipped, cut, repeated or spliced from another sample. [`mutated`] builds those;
//! positions are [`Index`] values, so a failing case shrinks towards the smallest edit.

use proptest::prelude::*;
use proptest::sample::Index;

/// `cases` cases per property, or `PROPTEST_CASES` when set: the suite stays a few seconds in
/// CI, and a deeper run is one variable away (`PROPTEST_CASES=20000 cargo test --lib properties`).
pub fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        // One file for every property, under tests/ (the crate's top level holds only the
        // project's own layout). Entries are seeds; replaying another property's seed is just one
        // more case.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/proptest-regressions.txt"),
        )),
        ..ProptestConfig::with_cases(cases)
    }
}

/// Bytes that mean something to one of the parsers: delimiters of HTTP, JSON, TOML, base64 and
/// query strings, TLS record types and versions, and bytes that break UTF-8.
const INTERESTING: &[u8] = b"\x00\x01\x02\x03\x04\x10\x14\x15\x16\x17\x7f\x80\xc3\xef\xbb\xbf\xff \t\r\n\"\\'=,;:/?&%+.-_~#[]{}()<>*@!$|^`eyJ0aAzZ9";

/// One byte, biased towards [`INTERESTING`].
pub fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(INTERESTING)]
}

/// A few bytes to insert or append.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 1..=max)
}

/// One edit of a sample.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Flip one bit of one byte.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Keep only a prefix.
    Truncate(Index),
    /// Insert bytes before a position.
    Insert(Index, Vec<u8>),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Remove up to `n` bytes from a position.
    Remove(Index, usize),
    /// Repeat a run of up to `n` bytes in place (doubled lengths, repeated fields).
    Duplicate(Index, usize),
    /// Keep a prefix of this sample and continue with a suffix of another one.
    Splice(Index, Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Edit::Flip(i, bit)),
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Set(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), bytes(16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        bytes(64).prop_map(Edit::Extend),
        (any::<Index>(), 1..32usize).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<Index>(), 1..32usize).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(at, other, from)| Edit::Splice(at, other, from)),
    ]
}

/// Apply `edit` to `input`; `seeds` are the other samples a splice may borrow from.
pub fn apply(input: &mut Vec<u8>, edit: &Edit, seeds: &[Vec<u8>]) {
    // `Index::index` needs a non-empty range: positions are taken in 0..=len.
    let pos = |i: &Index, len: usize| i.index(len + 1);
    match edit {
        Edit::Flip(i, bit) if !input.is_empty() => {
            let at = i.index(input.len());
            input[at] ^= 1 << bit;
        }
        Edit::Set(i, b) if !input.is_empty() => {
            let at = i.index(input.len());
            input[at] = *b;
        }
        Edit::Truncate(i) => input.truncate(pos(i, input.len())),
        Edit::Insert(i, b) => {
            let at = pos(i, input.len());
            input.splice(at..at, b.iter().copied());
        }
        Edit::Extend(b) => input.extend_from_slice(b),
        Edit::Remove(i, n) => {
            let at = pos(i, input.len());
            let end = (at + n).min(input.len());
            input.drain(at..end);
        }
        Edit::Duplicate(i, n) => {
            let at = pos(i, input.len());
            let end = (at + n).min(input.len());
            let run = input[at..end].to_vec();
            input.splice(end..end, run);
        }
        Edit::Splice(at, other, from) if !seeds.is_empty() => {
            let other = &seeds[other.index(seeds.len())];
            input.truncate(pos(at, input.len()));
            input.extend_from_slice(&other[pos(from, other.len())..]);
        }
        _ => {}
    }
}

/// One of `seeds` with one to four edits.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "mutated() needs at least one sample");
    (
        any::<Index>(),
        prop::collection::vec(edit(), 1..=4),
        Just(seeds),
    )
        .prop_map(|(which, edits, seeds)| {
            let mut input = seeds[which.index(seeds.len())].clone();
            for e in &edits {
                apply(&mut input, e, &seeds);
            }
            input
        })
}

/// [`mutated`] for text samples, as the lossy UTF-8 a text parser would be handed.
pub fn mutated_text(seeds: &[&str]) -> impl Strategy<Value = String> {
    let seeds = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    mutated(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Either fully random text (any Unicode) or a mutated sample: the first finds what no one
/// thought of, the second gets past the first checks.
pub fn text_input(seeds: &[&str]) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(byte(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        3 => mutated_text(seeds),
    ]
}

/// Any JSON value, small, with object keys biased towards the names the parsers look for
/// (token claims, registry error fields, log record fields), so odd types reach them.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    const KEYS: &[&str] = &[
        "exp",
        "nbf",
        "iat",
        "aud",
        "iss",
        "grant_type",
        "access",
        "tenant",
        "tid",
        "permissions",
        "roles",
        "type",
        "name",
        "actions",
        "notActions",
        "errors",
        "error",
        "error_description",
        "code",
        "message",
        "detail",
        "event",
        "cause",
        "count",
        "timestamp",
        "first",
        "last",
        "remedy",
        "client",
        "target",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(Value::from),
    ];
    let key =
        prop_oneof![3 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => any::<String>()];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Cut `input` into pieces at the given points (each taken modulo the remaining length), for
/// "split across reads" properties. Empty pieces are dropped: a reader never returns zero
/// bytes except at the end.
pub fn split(input: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| input[w[0]..w[1]].to_vec())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Percent-encode everything but unreserved characters (RFC 3986), as URL and form encoders do.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The first handshake message of `flight` (a ClientHello, or a server's first flight) framed
/// again in records cut at `cuts`: the same message as a peer fragmenting it differently would
/// send it. `None` when `flight` does not start with a handshake message.
pub fn handshake_in_records(flight: &[u8], cuts: &[Index]) -> Option<Vec<u8>> {
    use crate::tls::wire::{handshake_message, read_first, reframe, First, CONTENT_HANDSHAKE};
    let Ok(First::Handshake(t, body)) = read_first(flight, crate::tls::MAX_HELLO_BYTES) else {
        return None;
    };
    let msg = handshake_message(t, &body);
    Some(
        split(&msg, cuts)
            .iter()
            .flat_map(|piece| reframe(piece, CONTENT_HANDSHAKE, piece.len()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn split_pieces_concatenate_to_the_input() {
        let mut runner = TestRunner::deterministic();
        let input: Vec<u8> = (0..100).collect();
        for _ in 0..100 {
            let cuts = prop::collection::vec(any::<Index>(), 0..10)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let pieces = split(&input, &cuts);
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(pieces.concat(), input);
        }
    }

    #[test]
    fn edits_apply_to_empty_input_without_panicking() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..500 {
            let e = edit().new_tree(&mut runner).unwrap().current();
            let mut v = Vec::new();
            apply(&mut v, &e, &[b"abc".to_vec()]);
            apply(&mut v, &e, &[]);
        }
    }
}
