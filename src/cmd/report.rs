//! `regdoc report [LOGFILE|-] [--json]`: a summary of a regdoc log, by cause.
//!
//! Reads the JSON-lines log regdoc writes. `failure` records count one each, `failure_summary`
//! records add their `count` of suppressed repeats; `connection` records are tallied; any other
//! line is skipped. A line that is not a JSON object, or is absurdly long, is counted as bad and
//! skipped: a report never fails on a damaged log.

use crate::diagnose::catalog;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

/// Longest line read; longer ones are skipped as bad.
pub const MAX_LINE: usize = 1 << 20;
/// Distinct causes tracked; more are folded into `other`.
const MAX_CAUSES: usize = 256;
/// Distinct values tracked per breakdown (targets, registries, ...).
const MAX_VALUES: usize = 1024;
/// Values shown per breakdown in the text rendering.
const SHOWN: usize = 8;

/// The whole report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Failures, counting each summary's repeats.
    pub failures: u64,
    pub failure_records: u64,
    pub summary_records: u64,
    pub connection_records: u64,
    /// Valid JSON lines of other kinds (start-up, log lines).
    pub other_records: u64,
    /// Lines that were not JSON objects or were too long.
    pub bad_lines: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Most frequent cause first.
    pub causes: Vec<CauseReport>,
}

/// Failures of one cause.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CauseReport {
    pub cause: String,
    pub title: String,
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Breakdowns: value → failures, most frequent first.
    pub endpoints: Vec<(String, u64)>,
    pub registries: Vec<(String, u64)>,
    pub regions: Vec<(String, u64)>,
    pub targets: Vec<(String, u64)>,
    pub phases: Vec<(String, u64)>,
    pub clients: Vec<(String, u64)>,
    /// The steps, for the client of the first record that gave them (`remedy_client`).
    pub remedy: Vec<String>,
    /// `docker` or `containerd`; None for records older than `client_kind`.
    pub remedy_client: Option<String>,
    /// The steps for the other client, when records of both had this cause (a fleet of Docker
    /// hosts and containerd nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_remedy: Option<(String, Vec<String>)>,
    pub doc: Option<String>,
    /// What the client printed, from the first record that said.
    pub client_symptom: Option<String>,
    /// Which client printed it (`docker`, `containerd`), when the record said.
    pub symptom_client: Option<String>,
}

#[derive(Default)]
struct Tally {
    count: u64,
    first: Option<(i128, String)>,
    last: Option<(i128, String)>,
    title: Option<String>,
    /// (client, steps) of the first record of each client, in order of appearance.
    remedies: Vec<(Option<String>, Vec<String>)>,
    doc: Option<String>,
    symptom: Option<(Option<String>, String)>,
    endpoints: HashMap<String, u64>,
    registries: HashMap<String, u64>,
    regions: HashMap<String, u64>,
    targets: HashMap<String, u64>,
    phases: HashMap<String, u64>,
    clients: HashMap<String, u64>,
}

fn bump(map: &mut HashMap<String, u64>, value: Option<&str>, n: u64) {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return;
    };
    let v = shown(v, 200);
    if let Some(c) = map.get_mut(&v) {
        *c = c.saturating_add(n);
    } else if map.len() < MAX_VALUES {
        map.insert(v, n);
    } else {
        let c = map.entry("(other)".into()).or_insert(0);
        *c = c.saturating_add(n);
    }
}

fn cap(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A value that came from the network (a target, the client's words): a log written by an
/// older regdoc, or edited by hand, may hold a secret, so it passes the one redaction step
/// before `report` shows it. Catalog texts (title, remedy, doc) are regdoc's own.
fn shown(s: &str, max: usize) -> String {
    cap(&crate::redact::redact(s), max)
}

fn sorted(map: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp (`2026-11-23T18:40:00.123Z`,
/// `...+01:00`), for ordering. `None` when it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let days = i64::from(date.to_julian_day()) - 2_440_588; // Julian day of 1970-01-01
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &frac[..digits.min(9)];
        nanos = kept.parse::<i128>().ok()? * 10i128.pow(9 - kept.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && matches!(tz.as_bytes()[0], b'+' | b'-')
            && tz.as_bytes()[3] == b':' =>
        {
            let h: i64 = tz.get(1..3)?.parse().ok()?;
            let m: i64 = tz.get(4..6)?.parse().ok()?;
            let o = h * 3600 + m * 60;
            if tz.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// A record's client as an address without its port: a `failure` record's `client` has the
/// connection's port (`[::1]:50000`), a `failure_summary`'s is the address alone (`::1`), whose
/// colons are no port separator. Anything else is kept as written.
fn client_ip(c: &str) -> String {
    if let Ok(sa) = c.parse::<std::net::SocketAddr>() {
        return sa.ip().to_string();
    }
    c.to_string()
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(32)
                .map(|s| cap(s, 1000))
                .collect()
        })
        .unwrap_or_default()
}

struct Builder {
    report: Report,
    tallies: HashMap<String, Tally>,
    first: Option<(i128, String)>,
    last: Option<(i128, String)>,
}

fn widen(first: &mut Option<(i128, String)>, last: &mut Option<(i128, String)>, ts: &str) {
    let Some(t) = parse_rfc3339(ts) else {
        return;
    };
    if !matches!(first, Some((f, _)) if *f <= t) {
        *first = Some((t, ts.to_string()));
    }
    if !matches!(last, Some((l, _)) if *l >= t) {
        *last = Some((t, ts.to_string()));
    }
}

impl Builder {
    fn line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        self.report.lines += 1;
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.report.bad_lines += 1;
                return;
            }
        };
        match str_field(&v, "event") {
            Some("failure") => {
                self.report.failure_records += 1;
                self.failure(&v, 1);
            }
            Some("failure_summary") => {
                self.report.summary_records += 1;
                let n = v.get("count").and_then(Value::as_u64).unwrap_or(0);
                if n > 0 {
                    self.failure(&v, n);
                }
            }
            Some("connection") => self.report.connection_records += 1,
            _ => self.report.other_records += 1,
        }
    }

    fn failure(&mut self, v: &Value, n: u64) {
        // `n` is a summary's `count`, as the log says: saturate rather than overflow.
        self.report.failures = self.report.failures.saturating_add(n);
        let mut cause = str_field(v, "cause")
            .map(|c| cap(c, 64))
            .unwrap_or_else(|| "undiagnosed".into());
        if !self.tallies.contains_key(&cause) && self.tallies.len() >= MAX_CAUSES {
            cause = "other".into();
        }
        let t = self.tallies.entry(cause).or_default();
        t.count = t.count.saturating_add(n);
        // A summary spans its first..last repeats (its own timestamp is when it was written); a
        // failure is one instant.
        let span: Vec<&str> = ["first", "last"]
            .iter()
            .filter_map(|k| str_field(v, k))
            .collect();
        let instants = if span.is_empty() {
            str_field(v, "timestamp").into_iter().collect()
        } else {
            span
        };
        for ts in instants {
            widen(&mut t.first, &mut t.last, ts);
            widen(&mut self.first, &mut self.last, ts);
        }
        if t.title.is_none() {
            t.title = str_field(v, "cause_title").map(|s| cap(s, 200));
        }
        let client = str_field(v, "client_kind").map(|s| cap(s, 20));
        let steps = strings(v, "remedy");
        if !steps.is_empty()
            && t.remedies.len() < 2
            && !t.remedies.iter().any(|(c, _)| *c == client)
        {
            t.remedies.push((client.clone(), steps));
        }
        if t.doc.is_none() {
            t.doc = str_field(v, "doc").map(|s| cap(s, 300));
        }
        if t.symptom.is_none() {
            // Words regdoc only expected are marked so: `report` never presents them as seen.
            t.symptom = str_field(v, "client_symptom")
                .map(|s| shown(s, 500))
                .or_else(|| {
                    str_field(v, "expected_client_symptom")
                        .map(|s| format!("(expected) {}", shown(s, 500)))
                })
                .map(|s| (client, s));
        }
        bump(&mut t.endpoints, str_field(v, "endpoint"), n);
        bump(&mut t.registries, str_field(v, "registry"), n);
        bump(&mut t.regions, str_field(v, "region"), n);
        bump(&mut t.targets, str_field(v, "target"), n);
        bump(&mut t.phases, str_field(v, "phase"), n);
        bump(
            &mut t.clients,
            str_field(v, "client").map(client_ip).as_deref(),
            n,
        );
    }

    fn finish(mut self) -> Report {
        let mut causes: Vec<CauseReport> = self
            .tallies
            .into_iter()
            .map(|(cause, t)| {
                let known = catalog::by_id(&cause);
                CauseReport {
                    title: t
                        .title
                        .or_else(|| known.map(|c| c.title.to_string()))
                        .unwrap_or_else(|| match cause.as_str() {
                            "undiagnosed" => "No rule matched these failures".into(),
                            _ => "Unknown cause".into(),
                        }),
                    count: t.count,
                    first_seen: t.first.map(|f| f.1),
                    last_seen: t.last.map(|l| l.1),
                    endpoints: sorted(t.endpoints),
                    registries: sorted(t.registries),
                    regions: sorted(t.regions),
                    targets: sorted(t.targets),
                    phases: sorted(t.phases),
                    clients: sorted(t.clients),
                    remedy_client: t.remedies.first().and_then(|(c, _)| c.clone()),
                    other_remedy: t
                        .remedies
                        .get(1)
                        .and_then(|(c, steps)| Some((c.clone()?, steps.clone()))),
                    remedy: match t.remedies.into_iter().next() {
                        Some((_, steps)) => steps,
                        None => known
                            .map(|c| c.remedy.iter().map(|s| s.to_string()).collect())
                            .unwrap_or_default(),
                    },
                    doc: t.doc.or_else(|| known.map(|c| c.doc.to_string())),
                    symptom_client: t.symptom.as_ref().and_then(|(c, _)| c.clone()),
                    client_symptom: t.symptom.map(|(_, s)| s),
                    cause,
                }
            })
            .collect();
        causes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
        self.report.causes = causes;
        self.report.first_seen = self.first.map(|f| f.1);
        self.report.last_seen = self.last.map(|l| l.1);
        self.report
    }
}

/// Read one line of at most [`MAX_LINE`] bytes into `buf`. Returns `Ok(None)` at the end,
/// `Ok(Some(false))` for an over-long line (its rest is discarded).
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long {
            if buf.len() + part.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            return Ok(Some(!too_long));
        }
    }
}

/// Build the report of a log. A read error ends the input early; what was read is reported.
pub fn report<R: BufRead>(mut input: R) -> Report {
    let mut b = Builder {
        report: Report::default(),
        tallies: HashMap::new(),
        first: None,
        last: None,
    };
    let mut buf = Vec::new();
    while let Ok(Some(ok)) = read_line(&mut input, &mut buf) {
        if !ok {
            b.report.lines += 1;
            b.report.bad_lines += 1;
            continue;
        }
        match std::str::from_utf8(&buf) {
            Ok(line) => b.line(line),
            Err(_) => {
                b.report.lines += 1;
                b.report.bad_lines += 1;
            }
        }
    }
    b.finish()
}

fn breakdown(out: &mut String, label: &str, values: &[(String, u64)]) {
    if values.is_empty() {
        return;
    }
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|(v, n)| format!("{v} ({n})"))
        .collect();
    let more = if values.len() > SHOWN {
        format!(", +{} more", values.len() - SHOWN)
    } else {
        String::new()
    };
    let _ = writeln!(out, "    {label}: {}{more}", shown.join(", "));
}

impl Report {
    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "regdoc report: {} lines, {} failures ({} failure records, {} summaries), {} connections",
            self.lines,
            self.failures,
            self.failure_records,
            self.summary_records,
            self.connection_records
        );
        if self.bad_lines > 0 {
            let _ = writeln!(out, "skipped {} unreadable lines", self.bad_lines);
        }
        if let (Some(f), Some(l)) = (&self.first_seen, &self.last_seen) {
            let _ = writeln!(out, "failures from {f} to {l}");
        }
        if self.causes.is_empty() {
            let _ = writeln!(out, "\nno failures");
            return out;
        }
        for c in &self.causes {
            let _ = writeln!(out);
            let _ = writeln!(out, "{:>6} x {}: {}", c.count, c.cause, c.title);
            if let (Some(f), Some(l)) = (&c.first_seen, &c.last_seen) {
                let _ = writeln!(out, "    first {f}, last {l}");
            }
            breakdown(&mut out, "registries", &c.registries);
            breakdown(&mut out, "regions", &c.regions);
            breakdown(&mut out, "endpoints", &c.endpoints);
            breakdown(&mut out, "targets", &c.targets);
            breakdown(&mut out, "phases", &c.phases);
            breakdown(&mut out, "clients", &c.clients);
            if let Some(s) = &c.client_symptom {
                let who = c.symptom_client.as_deref().unwrap_or("the client");
                let _ = writeln!(out, "    {who} shows: {s}");
            }
            let mut fixes = vec![(c.remedy_client.as_deref(), &c.remedy)];
            if let Some((client, steps)) = &c.other_remedy {
                fixes.push((Some(client.as_str()), steps));
            }
            let several = fixes.len() > 1;
            for (client, steps) in fixes.into_iter().filter(|(_, s)| !s.is_empty()) {
                match client.filter(|_| several) {
                    Some(k) => {
                        let _ = writeln!(out, "    fix ({k}):");
                    }
                    None => {
                        let _ = writeln!(out, "    fix:");
                    }
                }
                for (i, r) in steps.iter().enumerate() {
                    let _ = writeln!(out, "      {}. {r}", i + 1);
                }
            }
            if let Some(d) = &c.doc {
                let _ = writeln!(out, "    doc: {d}");
            }
        }
        out
    }
}

/// Entry point of `regdoc report`: `None` or `-` reads standard input.
pub fn main(logfile: Option<&Path>, json: bool) -> ExitCode {
    let r = match logfile {
        None => report(std::io::stdin().lock()),
        Some(p) if p == Path::new("-") => report(std::io::stdin().lock()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => report(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("regdoc report: cannot read {}: {e}", p.display());
                return ExitCode::from(1);
            }
        },
    };
    if json {
        match serde_json::to_string_pretty(&r) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("regdoc report: cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", r.render_text());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_orders_across_offsets_and_fractions() {
        let a = parse_rfc3339("2026-11-23T18:40:00.123Z").unwrap();
        let b = parse_rfc3339("2026-11-23T19:40:00.000+01:00").unwrap();
        assert_eq!(a - b, 123_000_000);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-11-23T18:40:00").is_none());
        assert!(parse_rfc3339("2026-11-23T18:40:00.Z").is_none());
    }

    #[test]
    fn over_long_and_binary_lines_are_bad_not_fatal() {
        let mut log = Vec::new();
        log.extend(vec![b'x'; MAX_LINE + 10]);
        log.push(b'\n');
        log.extend_from_slice(b"\xff\xfe\n");
        log.extend_from_slice(
            br#"{"event":"failure","cause":"throttled","timestamp":"2026-11-23T18:00:00Z"}"#,
        );
        let r = report(&log[..]);
        assert_eq!(r.bad_lines, 2);
        assert_eq!(r.failures, 1);
        assert_eq!(r.causes[0].cause, "throttled");
        assert_eq!(r.causes[0].title, catalog::THROTTLED.title);
        assert!(!r.causes[0].remedy.is_empty(), "remedy from the catalog");
    }

    #[test]
    fn a_fleet_of_both_clients_gets_each_clients_steps() {
        let log = concat!(
            r#"{"event":"failure","cause":"intercept_ca_untrusted","client_kind":"containerd","client_symptom":"x509: certificate signed by unknown authority","remedy":["Name regdoc's CA as ca in hosts.toml"]}"#,
            "\n",
            r#"{"event":"failure","cause":"intercept_ca_untrusted","client_kind":"containerd","remedy":["Name regdoc's CA as ca in hosts.toml"]}"#,
            "\n",
            r#"{"event":"failure","cause":"intercept_ca_untrusted","client_kind":"docker","remedy":["Copy regdoc's CA to certs.d"]}"#,
            "\n",
        );
        let r = report(log.as_bytes());
        let c = &r.causes[0];
        assert_eq!(c.remedy_client.as_deref(), Some("containerd"));
        assert_eq!(
            c.other_remedy,
            Some(("docker".into(), vec!["Copy regdoc's CA to certs.d".into()]))
        );
        let text = r.render_text();
        assert!(text.contains("containerd shows: x509:"), "{text}");
        assert!(
            text.contains("fix (containerd):\n      1. Name regdoc's CA"),
            "{text}"
        );
        assert!(
            text.contains("fix (docker):\n      1. Copy regdoc's CA"),
            "{text}"
        );
        // One client only: one plain list, as before.
        let one = report(
            br#"{"event":"failure","cause":"throttled","client_kind":"docker","remedy":["Wait"]}"#
                .as_slice(),
        );
        let text = one.render_text();
        assert!(text.contains("    fix:\n      1. Wait"), "{text}");
        assert!(!text.contains("fix ("), "{text}");
    }

    /// A summary's `count` is the log's word, not regdoc's: absurd counts saturate instead of
    /// overflowing (a panic in a debug build, a wrapped total in a release one).
    #[test]
    fn huge_summary_counts_saturate() {
        let log = concat!(
            r#"{"event":"failure_summary","cause":"x","target":"t","count":18446744073709551615}"#,
            "\n",
            r#"{"event":"failure","cause":"x","target":"t"}"#,
            "\n",
            r#"{"event":"failure","cause":"y"}"#,
            "\n",
        );
        let r = report(log.as_bytes());
        assert_eq!(r.failures, u64::MAX);
        assert_eq!(r.causes[0].cause, "x");
        assert_eq!(r.causes[0].count, u64::MAX);
        assert_eq!(r.causes[0].targets, vec![("t".to_string(), u64::MAX)]);
        assert_eq!(r.causes[1].count, 1);
    }

    #[test]
    fn summaries_count_for_their_client_whatever_its_address_family() {
        let log = concat!(
            r#"{"event":"failure","cause":"bad_client_request","client":"[::1]:50000"}"#,
            "\n",
            r#"{"event":"failure_summary","cause":"bad_client_request","client":"::1","count":4}"#,
            "\n",
            r#"{"event":"failure","cause":"bad_client_request","client":"127.0.0.3:4000"}"#,
            "\n",
            r#"{"event":"failure_summary","cause":"bad_client_request","client":"127.0.0.3","count":2}"#,
            "\n",
        );
        let r = report(log.as_bytes());
        assert_eq!(r.failures, 8);
        let mut clients = r.causes[0].clients.clone();
        clients.sort();
        assert_eq!(
            clients,
            vec![("127.0.0.3".to_string(), 3), ("::1".to_string(), 5)]
        );
    }

    #[test]
    fn cause_count_is_bounded() {
        let mut log = String::new();
        for i in 0..(MAX_CAUSES + 50) {
            log.push_str(&format!("{{\"event\":\"failure\",\"cause\":\"c{i}\"}}\n"));
        }
        let r = report(log.as_bytes());
        assert_eq!(r.causes.len(), MAX_CAUSES + 1);
        assert_eq!(r.failures, (MAX_CAUSES + 50) as u64);
        assert_eq!(r.causes[0].cause, "other");
        assert_eq!(r.causes[0].count, 50);
    }
}

/// Properties of the log reader: any bytes make a report (never an error or a panic), every
/// line is accounted for exactly once, and how the input is buffered does not matter.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::{json_value, mutated, split};
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// A reader that hands out one piece per read, as a pipe delivers writes.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl std::io::Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(piece) = self.0.front_mut() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.pop_front();
            }
            Ok(n)
        }
    }

    const LOG: &str = include_str!("../../tests/fixtures/logs/mixed.jsonl");

    fn log_lines() -> Vec<Vec<u8>> {
        LOG.lines().map(|l| l.as_bytes().to_vec()).collect()
    }

    /// A log of damaged lines: real records mutated, any JSON, any bytes, joined by newlines
    /// (a damaged line may itself hold `\n` or `\r`).
    fn log() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            3 => mutated(log_lines()),
            1 => prop::sample::select(log_lines()),
            1 => json_value().prop_map(|v| v.to_string().into_bytes()),
            1 => (json_value(), prop::sample::select(vec!["failure", "failure_summary", "connection"]))
                .prop_map(|(v, event)| {
                    let mut v = v;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("event".into(), event.into());
                    }
                    v.to_string().into_bytes()
                }),
            1 => prop::collection::vec(any::<u8>(), 0..200),
        ];
        (prop::collection::vec(line, 0..24), any::<bool>()).prop_map(|(lines, final_newline)| {
            let mut log = lines.join(&b'\n');
            if final_newline {
                log.push(b'\n');
            }
            log
        })
    }

    /// The model of what counts as a line: every piece between newlines that is not blank
    /// once decoded; undecodable pieces count (as bad).
    fn lines_in(log: &[u8]) -> u64 {
        log.split(|&b| b == b'\n')
            .filter(|piece| match std::str::from_utf8(piece) {
                Ok(text) => !text.trim().is_empty(),
                Err(_) => true,
            })
            .count() as u64
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        /// Every line is counted once, as exactly one kind of record or as bad; the report
        /// renders either way.
        #[test]
        fn every_line_is_accounted_for(log in log()) {
            let r = report(&log[..]);
            prop_assert_eq!(r.lines, lines_in(&log));
            prop_assert_eq!(
                r.lines,
                r.failure_records + r.summary_records + r.connection_records + r.other_records + r.bad_lines
            );
            prop_assert!(r.failures >= r.failure_records);
            prop_assert_eq!(r.causes.iter().map(|c| c.count).sum::<u64>(), r.failures);
            let _ = r.render_text();
            prop_assert!(serde_json::to_string(&r).is_ok());
        }

        /// The same log read through buffers of any size (lines cut across reads) gives the
        /// same report.
        #[test]
        fn buffering_does_not_change_the_report(log in log(), capacity in 1usize..64) {
            let whole = serde_json::to_value(report(&log[..])).unwrap();
            let buffered = report(std::io::BufReader::with_capacity(capacity, &log[..]));
            prop_assert_eq!(serde_json::to_value(buffered).unwrap(), whole);
        }

        /// The same log delivered in arbitrary pieces by the reader gives the same report.
        #[test]
        fn pieces_do_not_change_the_report(log in log(), cuts in prop::collection::vec(any::<Index>(), 0..16)) {
            let whole = serde_json::to_value(report(&log[..])).unwrap();
            let got = report(std::io::BufReader::new(Pieces(split(&log, &cuts).into())));
            prop_assert_eq!(serde_json::to_value(got).unwrap(), whole);
        }

        /// Timestamps: any text is parsed or refused without panicking; real RFC 3339 times at
        /// any offset and precision give their instant.
        #[test]
        fn rfc3339_reads_what_time_writes(
            nanos in 0i128..253_402_300_799_000_000_000,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            junk in "\\PC{0,40}|[0-9T:.Z+-]{18,32}",
        ) {
            use time::format_description::well_known::Rfc3339;
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap().to_offset(offset);
            // Years before 0000 or after 9999 cannot be written in RFC 3339.
            prop_assume!((0..=9999).contains(&at.year()));
            let text = at.format(&Rfc3339).unwrap();
            prop_assert_eq!(parse_rfc3339(&text), Some(nanos), "{}", text);
            let _ = parse_rfc3339(&junk);
        }
    }
}
