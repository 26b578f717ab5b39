//! `/etc/docker/daemon.json`'s `proxies` object (Engine 23+): when set, each of its values
//! replaces the daemon's environment variable of the same role.

use std::path::{Path, PathBuf};

pub const PATH: &str = "etc/docker/daemon.json";

/// The proxy settings daemon.json gives, each optional.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
}

/// What reading daemon.json gave.
#[derive(Debug)]
pub enum DaemonJson {
    Absent,
    Read {
        path: PathBuf,
        proxies: Proxies,
    },
    /// dockerd refuses to start on a file it cannot parse: a finding, not a regdoc error.
    Invalid {
        path: PathBuf,
        reason: String,
    },
}

pub fn read(root: &Path) -> DaemonJson {
    let path = root.join(PATH);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DaemonJson::Absent,
        Err(e) => {
            return DaemonJson::Invalid {
                path,
                reason: e.to_string(),
            }
        }
    };
    match parse(&text) {
        Ok(proxies) => DaemonJson::Read { path, proxies },
        Err(reason) => DaemonJson::Invalid { path, reason },
    }
}

fn parse(text: &str) -> Result<Proxies, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(p) = v.get("proxies") else {
        return Ok(Proxies::default());
    };
    let field = |name: &str| -> Result<Option<String>, String> {
        match p.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("proxies.{name} must be a string, not {other}")),
        }
    };
    Ok(Proxies {
        http: field("http-proxy")?,
        https: field("https-proxy")?,
        no_proxy: field("no-proxy")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_object() {
        let p = parse(
            r#"{"log-driver":"json-file","proxies":{"https-proxy":"http://127.0.0.1:3128","no-proxy":"localhost"}}"#,
        )
        .unwrap();
        assert_eq!(p.https.as_deref(), Some("http://127.0.0.1:3128"));
        assert_eq!(p.http, None);
        assert_eq!(p.no_proxy.as_deref(), Some("localhost"));
        assert_eq!(parse("{}").unwrap(), Proxies::default());
        assert!(parse("{").is_err());
        assert!(parse(r#"{"proxies":{"http-proxy":3}}"#).is_err());
    }
}
