//! Small text and address helpers shared by the rules, the symptom renderer and `explain`.

use std::net::IpAddr;

/// Longest evidence string kept; registry bodies can be long and hostile.
pub const MAX_EVIDENCE_CHARS: usize = 300;

/// Make network text safe to show as evidence: [`crate::redact::redact`] (the one redaction
/// step), then capped to [`MAX_EVIDENCE_CHARS`].
pub fn redact(s: &str) -> String {
    cap(crate::redact::redact(s).trim(), MAX_EVIDENCE_CHARS)
}

/// Cut `s` to at most `max` characters (on a char boundary), marking the cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// Levenshtein distance, for "did you mean" suggestions and name typos. Inputs are short ids.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// RFC 1918 (and IPv6 unique-local) addresses: where private endpoints live.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_private(),
            None => (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

/// Addresses a public DNS answer would give: not private, loopback, link-local or unspecified.
/// Loopback counts as local on purpose: test setups and `connect_to` rules point there.
pub fn is_public(ip: IpAddr) -> bool {
    if is_private(ip) || ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_link_local()
                || v4.octets()[0] == 100 && v4.octets()[1] >= 64 && v4.octets()[1] < 128)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// `1800000000` → `2027-01-15T08:00:00Z`; falls back to the number for out-of-range values.
pub fn unix_to_rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Human age: `45s`, `12m`, `3h`.
pub fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_jwts_sas_signatures_and_long_keys() {
        let s = "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl failed; url ?sv=2019&sig=AbC%2Fdef and key Zk9vQmFyQmF6cXV1eDEyMzQ1Njc4OTBhYmNkZWY=";
        let r = redact(s);
        assert!(!r.contains("eyJ"), "{r}");
        assert!(!r.contains("AbC%2F"), "{r}");
        assert!(!r.contains("Zk9vQmFy"), "{r}");
        assert!(r.contains("failed"));
    }

    #[test]
    fn redact_keeps_registry_messages() {
        let m = "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.";
        assert_eq!(redact(m), m);
        let h = "myregistryname12345678901234567.westeurope.data.azurecr.io";
        assert_eq!(redact(h), h);
        let b = "weumyregistry0123456789abcdef.blob.core.windows.net";
        assert_eq!(redact(b), b);
        let digest = "sha256:6fa3b1c2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d";
        assert_eq!(redact(digest), digest);
    }

    #[test]
    fn redact_strips_control_bytes_and_caps() {
        let long = "a\r\nb".repeat(500);
        let r = redact(&long);
        assert!(!r.contains('\n') && !r.contains('\r'));
        assert!(r.chars().count() <= MAX_EVIDENCE_CHARS);
    }

    #[test]
    fn private_and_public_addresses() {
        assert!(is_private("10.1.2.3".parse().unwrap()));
        assert!(is_private("172.20.0.1".parse().unwrap()));
        assert!(is_private("fd00::1".parse().unwrap()));
        assert!(!is_private("20.50.2.1".parse().unwrap()));
        assert!(is_public("20.50.2.1".parse().unwrap()));
        assert!(!is_public("127.0.0.1".parse().unwrap()));
        assert!(!is_public("100.64.0.1".parse().unwrap()));
        assert!(!is_public("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("azurecr", "azurcr"), 1);
        assert_eq!(edit_distance("throttled", "throttle"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn rfc3339_of_unix_time() {
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
