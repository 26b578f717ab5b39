//! `regdoc report`'s log reader (`regdoc::cmd::report::report`), on a log file.
//!
//! Input: byte 0 is the read buffer's size (lines arrive split across reads); the rest is the
//! log. Checked: no panic, no overflow; every non-blank line is counted once, as bad or as one
//! kind of record; failures add up over causes; the text and JSON renderings work; the buffer
//! size changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::cmd::report::{report, Report};
use std::io::BufReader;

fn summary(r: &Report) -> String {
    serde_json::to_string(r).expect("report serialises")
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, log)) = data.split_first() else {
        return;
    };
    let r = report(BufReader::with_capacity(size as usize + 1, log));
    assert_eq!(
        r.lines,
        r.bad_lines
            + r.failure_records
            + r.summary_records
            + r.connection_records
            + r.other_records,
        "lines do not add up"
    );
    let by_cause: u128 = r.causes.iter().map(|c| u128::from(c.count)).sum();
    if r.failures < u64::MAX {
        assert_eq!(
            by_cause,
            u128::from(r.failures),
            "causes do not add up to the failures"
        );
    }
    let blank_or_not = log.split(|&b| b == b'\n').count() as u64;
    assert!(r.lines <= blank_or_not);
    let _ = r.render_text();
    let whole = report(log);
    assert_eq!(
        summary(&whole),
        summary(&r),
        "the read size changed the report"
    );
});
