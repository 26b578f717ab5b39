//! What the check reads in a manifest: which manifest of an index to follow, and which blob
//! is the cheapest to fetch.

/// Manifest media types Docker accepts, indexes first.
pub const MEDIA_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json";

/// An index's manifest for linux/amd64 (else its first); `None` for an image manifest.
pub fn platform_manifest(v: &serde_json::Value) -> Option<String> {
    let list = v.get("manifests")?.as_array()?;
    let digest = |m: &serde_json::Value| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .filter(|d| is_digest(d))
            .map(str::to_string)
    };
    list.iter()
        .find(|m| {
            let p = &m["platform"];
            p["os"] == "linux" && p["architecture"] == "amd64"
        })
        .and_then(digest)
        .or_else(|| list.first().and_then(digest))
}

/// The smallest of a manifest's layers and config: `(digest, size)`.
pub fn smallest_blob(v: &serde_json::Value) -> Option<(String, u64)> {
    let mut blobs: Vec<&serde_json::Value> = v
        .get("layers")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    blobs.extend(v.get("config"));
    blobs
        .into_iter()
        .filter_map(|b| {
            let d = b.get("digest")?.as_str()?;
            is_digest(d).then(|| {
                (
                    d.to_string(),
                    b.get("size").and_then(|s| s.as_u64()).unwrap_or(0),
                )
            })
        })
        .min_by_key(|(_, size)| *size)
}

/// A sha256 digest, the only form the check puts into a path: whatever else a manifest says
/// never reaches a request line.
fn is_digest(d: &str) -> bool {
    d.len() == 71 && d.starts_with("sha256:") && d[7..].bytes().all(|c| c.is_ascii_hexdigit())
}

/// `sha256:` and the first 12 hex digits.
pub fn short_digest(d: &str) -> String {
    d.chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn the_smallest_blob_is_chosen() {
        let v = serde_json::json!({
            "config": {"digest": d('a'), "size": 500},
            "layers": [{"digest": d('b'), "size": 10}, {"digest": d('c'), "size": 99}],
        });
        assert_eq!(smallest_blob(&v), Some((d('b'), 10)));
        assert_eq!(
            smallest_blob(&serde_json::json!({"layers": [{"digest": "../x"}]})),
            None
        );
    }

    #[test]
    fn an_index_leads_to_linux_amd64() {
        let v = serde_json::json!({"manifests": [
            {"digest": d('1'), "platform": {"os": "windows", "architecture": "amd64"}},
            {"digest": d('2'), "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        assert_eq!(platform_manifest(&v), Some(d('2')));
        assert_eq!(platform_manifest(&serde_json::json!({"layers": []})), None);
        let odd = serde_json::json!({"manifests": [{"digest": "latest/../../x"}]});
        assert_eq!(platform_manifest(&odd), None);
    }

    #[test]
    fn short_digests() {
        assert_eq!(short_digest(&d('a')), "sha256:aaaaaaaaaaaa");
    }
}
