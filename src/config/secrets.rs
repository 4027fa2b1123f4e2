//! Secret settings: values that no Debug output or log line may show, and
//! the files container platforms mount them from.

use std::{ffi::OsStr, fmt, path::Path};

use anyhow::Context as _;
use clap::{Arg, Command, builder::TypedValueParser, error::ErrorKind};
use secrecy::{ExposeSecret as _, SecretString};

/// The secret of `value`, else the content of `file` (one trailing newline
/// ignored); `flag` names the file's setting in errors.
pub(super) fn secret_from(
    value: Option<&SecretString>,
    file: Option<&Path>,
    flag: &str,
) -> anyhow::Result<Option<SecretString>> {
    if let Some(value) = value {
        return Ok(Some(value.clone()));
    }
    let Some(path) = file else { return Ok(None) };
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let secret = raw.strip_suffix('\n').unwrap_or(&raw);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    let secret = parse_secret(secret).map_err(|why| anyhow::anyhow!("{flag}: the secret {why}"))?;
    Ok(Some(secret))
}

/// A URL that may carry a password: Debug and Display show it without.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub(super) fn new(raw: &str) -> Self {
        Self(raw.into())
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(self.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                write!(f, "{url}")
            }
            Err(_) => f.write_str("<a URL that does not parse>"),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// A value parser that never quotes the value it refuses. clap's own
/// message does (`invalid value '…' for …`), and these values are secrets
/// and URLs with passwords: a platform keeps a failed start's output in its
/// logs.
#[derive(Clone)]
pub(super) struct Unquoted<T>(pub(super) fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Unquoted<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let why = match value.to_str().map(self.0) {
            Some(Ok(parsed)) => return Ok(parsed),
            Some(Err(why)) => why,
            None => "is not UTF-8".to_owned(),
        };
        let flag = arg.map(ToString::to_string).unwrap_or_default();
        let message = format!("invalid value for '{flag}': {why}\n");
        Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd))
    }
}

pub(super) fn parse_database_url(raw: &str) -> Result<SecretUrl, String> {
    if raw.starts_with("sqlite:") {
        return Ok(SecretUrl::new(raw));
    }
    if !raw.starts_with("postgres://") && !raw.starts_with("postgresql://") {
        return Err("must start with sqlite:, postgres:// or postgresql://".into());
    }
    // Refused here, in words that never quote it: the driver's own error
    // for a URL it cannot parse (a password with an unescaped `#`, `/` or
    // `?`) quotes the whole URL.
    url::Url::parse(raw)
        .map(|_| SecretUrl::new(raw))
        .map_err(|e| {
            format!("is not a URL ({e}); percent-encode reserved characters in the password")
        })
}

pub(super) fn parse_amqp_url(raw: &str) -> Result<SecretUrl, String> {
    // lapin quotes the whole URL in some of its errors (one that cannot be a
    // base, such as `amqp:user:password@host`): the password with it.
    if raw.is_empty() {
        return Err("is empty".into());
    }
    raw.parse::<lapin::uri::AMQPUri>()
        .map(|_| SecretUrl::new(raw))
        .map_err(|e| format!("is not an AMQP URL: {}", e.replace(raw, "<the URL>")))
}

pub(super) fn parse_secret(raw: &str) -> Result<SecretString, String> {
    if raw.len() >= 32 {
        Ok(raw.into())
    } else {
        Err("must be at least 32 bytes".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_loses_its_trailing_newline_and_must_be_long_enough() {
        let dir = std::env::temp_dir().join(format!("secrets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let long = dir.join("long");
        std::fs::write(&long, "0123456789abcdef0123456789abcdef\r\n").unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "tiny\n").unwrap();

        let read = secret_from(None, Some(&long), "--x-file").unwrap().unwrap();
        let err = secret_from(None, Some(&short), "--x-file").unwrap_err();

        assert_eq!(read.expose_secret(), "0123456789abcdef0123456789abcdef");
        assert!(err.to_string().contains("--x-file"), "{err}");
        assert!(!err.to_string().contains("tiny"), "{err}");
    }

    #[test]
    fn a_url_shows_everything_but_its_password() {
        let url = SecretUrl::new("postgres://app:hunter2@db.internal:5432/invites");
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.internal:5432/invites"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(
            url.expose(),
            "postgres://app:hunter2@db.internal:5432/invites"
        );
    }
}
