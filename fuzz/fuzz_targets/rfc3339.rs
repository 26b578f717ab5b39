//! `regdoc::cmd::report::parse_rfc3339`, on timestamps read from a log.
//!
//! Checked: no panic, no overflow; where the `time` crate reads the text as RFC 3339, regdoc
//! reads the same instant (leap seconds aside: `time` reads `:60` as the end of `:59`; and
//! only with the separators RFC 3339 names: `time` takes any character there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::cmd::report::parse_rfc3339;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let ours = parse_rfc3339(s);
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        let leap = s.get(17..19) == Some("60");
        // `time` takes any character between date and time; RFC 3339 names `T` and allows
        // `t` and a space, and regdoc reads those.
        let separator = matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' '));
        if !leap && separator {
            assert_eq!(ours, Some(t.unix_timestamp_nanos()), "{s:?} read as {t}");
        }
    }
});
