//! The client-answer watcher (`regdoc::tls::client_answer::ClientAnswer`), on the client's
//! records after the server's first flight.
//!
//! Input: byte 0 says the negotiated version (bit 0: TLS 1.3) and how the watch ends (bits 1-2:
//! not at all, the client's end, the server's end, both); byte 1 the read size (0: one read);
//! the rest is the client's stream. Checked: no panic; the verdict does not depend on how the
//! stream is split into reads; once decided it never changes (more bytes, an end); an end
//! always gives a verdict; a refusal's alert names are printable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::tls::client_answer::{Answer, ClientAnswer, Refusal};

fn run(tls13: bool, stream: &[u8], step: usize, ending: u8) -> Answer {
    let mut w = ClientAnswer::new(tls13);
    let step = if step == 0 { stream.len().max(1) } else { step };
    let mut decided: Option<Answer> = None;
    for chunk in stream.chunks(step) {
        let a = w.feed(chunk);
        if let Some(d) = &decided {
            assert_eq!(&a, d, "a verdict changed after more bytes");
        } else if a != Answer::Pending {
            decided = Some(a.clone());
        }
    }
    let fed = w.answer();
    let ended = match ending {
        0 => fed.clone(),
        1 => w.end(),
        2 => w.server_ended(),
        _ => {
            let first = w.end();
            assert_eq!(
                w.server_ended(),
                first,
                "a verdict changed at the second end"
            );
            first
        }
    };
    if ending != 0 {
        assert_ne!(ended, Answer::Pending, "an end gave no verdict");
    }
    if fed != Answer::Pending {
        assert_eq!(ended, fed, "an end changed a verdict");
    }
    if ended != Answer::Pending {
        let more = w.feed(b"\x15\x03\x03\x00\x02\x02\x30");
        assert_eq!(more, ended, "bytes after a verdict changed it");
    }
    ended
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let tls13 = data[0] & 1 == 1;
    let ending = (data[0] >> 1) & 3;
    let step = data[1] as usize;
    let stream = &data[2..];

    let split = run(tls13, stream, step, ending);
    let whole = run(tls13, stream, 0, ending);
    assert_eq!(split, whole, "read sizes changed the verdict");
    if let Answer::Refused(Refusal::Alert { level, description }) = &whole {
        for s in [level, description] {
            assert!(
                !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()),
                "{s:?}"
            );
        }
    }
});
