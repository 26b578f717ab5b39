//! Whether regdoc has seen the daemon at all: the last `connection` record in regdoc's log file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Enough of the end of a log to hold many records without reading a large file whole.
const TAIL_BYTES: u64 = 4 << 20;

/// The last connection record: its timestamp and client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastConnection {
    pub timestamp: String,
    pub client: String,
}

/// The last `connection` record in the final `TAIL_BYTES` of `path`; None when there is none.
pub fn last_connection(path: &Path) -> Result<Option<LastConnection>, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    // The first line may be cut by the seek; it fails to parse and is skipped like any other
    // line that is not a record.
    Ok(text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("event")?.as_str()? != "connection" {
            return None;
        }
        Some(LastConnection {
            timestamp: v.get("timestamp")?.as_str()?.to_string(),
            client: v
                .get("client")
                .and_then(|c| c.as_str())
                .unwrap_or("?")
                .to_string(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_connection_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("regdoc.log");
        std::fs::write(
            &p,
            concat!(
                "{\"timestamp\":\"2026-12-02T10:00:00.000Z\",\"event\":\"connection\",\"client\":\"127.0.0.1:40000\"}\n",
                "{\"timestamp\":\"2026-12-02T10:05:00.000Z\",\"event\":\"connection\",\"client\":\"127.0.0.1:40002\"}\n",
                "{\"timestamp\":\"2026-12-02T10:06:00.000Z\",\"event\":\"failure\"}\n",
                "not json\n",
            ),
        )
        .unwrap();
        assert_eq!(
            last_connection(&p).unwrap(),
            Some(LastConnection {
                timestamp: "2026-12-02T10:05:00.000Z".into(),
                client: "127.0.0.1:40002".into()
            })
        );
        std::fs::write(&p, "").unwrap();
        assert_eq!(last_connection(&p).unwrap(), None);
    }
}
