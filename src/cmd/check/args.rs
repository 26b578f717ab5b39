//! The command line of `regdoc check`, and the secrets it reads from standard input.
//!
//! Credentials never travel in argv (any user can read another's argv in /proc): only the user
//! name does, the password or refresh token comes from standard input.

use clap::Args;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// `regdoc check REGISTRY ...`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The registry's login server: `host` or `host:port` (443 when absent).
    pub registry: String,
    /// Also fetch this image's manifest and the first bytes of its smallest blob, following
    /// the redirect to the data endpoint: `REPO:TAG` or `REPO@DIGEST`.
    #[arg(long, value_name = "REPO:TAG")]
    pub image: Option<String>,
    /// User name for the token endpoint (the password comes from --password-stdin).
    #[arg(long, short = 'u', value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, requires = "username", conflicts_with = "token_stdin")]
    pub password_stdin: bool,
    /// Read an ACR refresh token (`az acr login --expose-token`) from standard input.
    #[arg(long, conflicts_with = "username")]
    pub token_stdin: bool,
    /// regdoc's configuration: the same resolution, upstream proxy, connect_to, extra_roots and
    /// `[[registry]]` expectations as `regdoc run`. Default: $REGDOC_CONFIG, else the embedded
    /// defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the steps as JSON.
    #[arg(long)]
    pub json: bool,
    /// Deadline of each step (`10s`, `500ms`).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

/// Why the arguments cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("REGISTRY {0:?}: expected host or host:port")]
    Registry(String),
    #[error("--image {0:?}: expected REPO:TAG or REPO@DIGEST")]
    Image(String),
    #[error("cannot read the secret from standard input: {0}")]
    Stdin(String),
    #[error("standard input held no secret")]
    EmptySecret,
}

/// A password or token. Its Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The secret itself, only to put it on the wire or into a redactor.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What the token endpoint is asked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None given: an anonymous token, as Docker asks for a pull without a login.
    Anonymous,
    /// Docker's username/password flow: Basic auth on a GET of the realm.
    Password { username: String, password: Secret },
    /// A refresh token exchanged for an access token (POST, `grant_type=refresh_token`).
    RefreshToken(Secret),
}

/// An image to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

/// `host` or `host:port` (brackets around an IPv6 literal).
pub fn parse_registry(s: &str) -> Result<(String, u16), ArgsError> {
    let bad = || ArgsError::Registry(s.to_string());
    let s = s.trim();
    if s.is_empty() || s.contains('/') || s.contains('@') || s.contains("://") {
        return Err(bad());
    }
    let (host, port) = match crate::config::split_host_port(s) {
        Some((h, p)) => (h, p),
        None if !s.contains(':') || s.starts_with('[') => (
            s.trim_start_matches('[').trim_end_matches(']').to_string(),
            443,
        ),
        None => return Err(bad()),
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !ok || port == 0 {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// `repo:tag`, `repo@sha256:...`, or `repo` (tag `latest`, as Docker does).
pub fn parse_image(s: &str) -> Result<Image, ArgsError> {
    let bad = || ArgsError::Image(s.to_string());
    let (repository, reference) = if let Some((r, d)) = s.split_once('@') {
        (r, d)
    } else {
        match s.rsplit_once(':') {
            // A colon before the last slash belongs to a host:port, not a tag.
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (s, "latest"),
        }
    };
    let repo_ok = !repository.is_empty()
        && repository.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/')
        });
    let ref_ok = !reference.is_empty()
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !repo_ok || !ref_ok {
        return Err(bad());
    }
    Ok(Image {
        repository: repository.to_string(),
        reference: reference.to_string(),
    })
}

/// Read the credentials the flags ask for from `stdin` (one line; the line end is dropped).
pub fn credentials(args: &CheckArgs, stdin: impl Read) -> Result<Credentials, ArgsError> {
    if !args.password_stdin && !args.token_stdin {
        return Ok(Credentials::Anonymous);
    }
    let secret = read_secret(stdin)?;
    match (&args.username, args.token_stdin) {
        (_, true) => Ok(Credentials::RefreshToken(secret)),
        (Some(u), false) => Ok(Credentials::Password {
            username: u.clone(),
            password: secret,
        }),
        // clap's `requires` makes this unreachable; refuse rather than guess.
        (None, false) => Err(ArgsError::EmptySecret),
    }
}

fn read_secret(mut stdin: impl Read) -> Result<Secret, ArgsError> {
    let mut buf = String::new();
    // Bounded: a secret is short, and a stray pipe must not fill memory.
    (&mut stdin)
        .take(64 * 1024)
        .read_to_string(&mut buf)
        .map_err(|e| ArgsError::Stdin(e.to_string()))?;
    let line = buf.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(ArgsError::EmptySecret);
    }
    Ok(Secret(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_forms() {
        assert_eq!(
            parse_registry("MyReg.azurecr.io").unwrap(),
            ("myreg.azurecr.io".into(), 443)
        );
        assert_eq!(
            parse_registry("reg.internal:5000").unwrap(),
            ("reg.internal".into(), 5000)
        );
        assert_eq!(parse_registry("[::1]:5000").unwrap(), ("::1".into(), 5000));
        for bad in [
            "",
            "https://x.io",
            "x.io/v2",
            "x.io:0",
            "x.io:abc",
            "u@x.io",
        ] {
            assert!(parse_registry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_forms() {
        let i = parse_image("team/app:1.2").unwrap();
        assert_eq!(
            (i.repository.as_str(), i.reference.as_str()),
            ("team/app", "1.2")
        );
        let i = parse_image("app").unwrap();
        assert_eq!(i.reference, "latest");
        let d = format!("app@sha256:{}", "a".repeat(64));
        assert!(parse_image(&d).unwrap().reference.starts_with("sha256:"));
        assert!(parse_image("App:1").is_err());
        assert!(parse_image("app:").is_err());
    }

    #[test]
    fn secrets_come_from_stdin_and_never_show_in_debug() {
        let s = read_secret("hunter2\n".as_bytes()).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(read_secret("\n".as_bytes()), Err(ArgsError::EmptySecret));
        let c = Credentials::Password {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
