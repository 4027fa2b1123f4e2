//! Where the JWT keys come from: the settings (an HS256 secret or its file, a
//! PEM public key, a JWKS URL) or, on the embedded default, a development
//! secret kept beside the SQLite file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret as _, SecretSlice};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned, der::DecodePem as _};

use super::{Authenticator, Jwks, SigningKey, VerifyingKey};
use crate::{config::Settings, store};

const PUBLIC_KEY_FLAG: &str = "--jwt-public-key / INVITES_JWT_PUBLIC_KEY";
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// How this server checks tokens: the authenticator, and the JWKS to keep
/// fresh (and wait for before serving) when there is one.
pub struct TokenKeys {
    pub authenticator: Authenticator,
    pub jwks: Option<Jwks>,
}

pub fn resolve(settings: &Settings) -> anyhow::Result<TokenKeys> {
    let key = verifying_key(settings)?;
    let jwks = match &key {
        VerifyingKey::Jwks(jwks) => Some(jwks.clone()),
        _ => None,
    };
    warn_if_any_audience_passes(settings, &key);
    let authenticator = Authenticator::new(
        key,
        settings.jwt_issuer.as_deref(),
        settings.jwt_audience.as_deref(),
    )
    .context(PUBLIC_KEY_FLAG)?
    .with_grants_claim(&settings.grants_claim)
    .with_leeway(settings.jwt_leeway);
    Ok(TokenKeys {
        authenticator,
        jwks,
    })
}

fn verifying_key(settings: &Settings) -> anyhow::Result<VerifyingKey> {
    if let Some(secret) = settings.hs256_secret()? {
        return Ok(VerifyingKey::Secret(
            secret.expose_secret().as_bytes().to_vec(),
        ));
    }
    if let Some(path) = &settings.jwt_public_key {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read {PUBLIC_KEY_FLAG} {}", path.display()))?;
        return Ok(VerifyingKey::PublicKeyPem(pem));
    }
    if let Some(url) = &settings.jwt_jwks_url {
        warn_if_in_clear(url);
        let jwks = Jwks::new(url, settings.jwt_jwks_refresh)
            .context("--jwt-jwks-url / INVITES_JWT_JWKS_URL")?;
        return Ok(VerifyingKey::Jwks(jwks));
    }
    let (secret, path) = development_secret(settings)?;
    tracing::warn!(
        secret_file = %path.display(),
        "no JWT key configured: using the development secret beside the SQLite file. \
         Mint a token with: invite-service token --sub alice --email alice@example.org"
    );
    Ok(VerifyingKey::Secret(secret.expose_secret().to_vec()))
}

/// Keys fetched in clear text can be swapped on the way: fine for an
/// identity provider on the same machine, not across a network.
fn warn_if_in_clear(url: &str) {
    let parsed = url::Url::parse(url).ok();
    let remote_http = parsed.is_some_and(|url| {
        url.scheme() == "http"
            && !matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    });
    if remote_http {
        tracing::warn!(
            "--jwt-jwks-url is plain http to another host: anyone on the way can replace the \
             keys. Use https"
        );
    }
}

/// An identity provider signs tokens for all its clients with the same keys:
/// without an audience, a token meant for another service passes here too.
fn warn_if_any_audience_passes(settings: &Settings, key: &VerifyingKey) {
    let shared_keys = matches!(key, VerifyingKey::PublicKeyPem(_) | VerifyingKey::Jwks(_));
    if shared_keys && settings.jwt_audience.is_none() {
        tracing::warn!(
            "tokens are verified with an identity provider's public keys but no audience is \
             required: tokens it issued for other services are accepted too. Set \
             --jwt-audience / INVITES_JWT_AUDIENCE"
        );
    }
}

/// A PEM public key and the one algorithm it verifies: RSA → RS256, EC on
/// P-256 → ES256. Any other curve or key type is refused here, at start-up,
/// rather than by every call.
pub(super) fn from_pem(pem: &[u8]) -> anyhow::Result<SigningKey> {
    // PKCS#1 (`RSA PUBLIC KEY`) or SPKI RSA.
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(SigningKey {
            key,
            algorithm: Algorithm::RS256,
        });
    }
    let text = std::str::from_utf8(pem).ok();
    let info = text
        .and_then(|text| SubjectPublicKeyInfoOwned::from_pem(text).ok())
        .context("not a PEM public key (-----BEGIN PUBLIC KEY-----)")?;
    anyhow::ensure!(
        info.algorithm.oid == EC_PUBLIC_KEY,
        "a public key of type {}: only RSA (RS256) and P-256 EC (ES256) keys are supported",
        info.algorithm.oid
    );
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|params| params.decode_as::<ObjectIdentifier>().ok());
    anyhow::ensure!(
        curve == Some(P256),
        "an EC key on the curve {}: only P-256 (ES256) is supported",
        curve_name(curve)
    );
    Ok(SigningKey {
        key: DecodingKey::from_ec_pem(pem)?,
        algorithm: Algorithm::ES256,
    })
}

fn curve_name(curve: Option<ObjectIdentifier>) -> String {
    match curve.map(|oid| oid.to_string()).as_deref() {
        Some("1.3.132.0.34") => "P-384".into(),
        Some("1.3.132.0.35") => "P-521".into(),
        Some("1.3.132.0.10") => "secp256k1".into(),
        Some(other) => other.into(),
        None => "(not named)".into(),
    }
}

/// The secret `token` signs with: the configured one, or the development one.
pub fn signing_secret(settings: &Settings) -> anyhow::Result<SecretSlice<u8>> {
    if let Some(secret) = settings.hs256_secret()? {
        return Ok(secret.expose_secret().as_bytes().to_vec().into());
    }
    if settings.jwt_public_key.is_some() || settings.jwt_jwks_url.is_some() {
        anyhow::bail!(
            "tokens are verified with public keys (--jwt-public-key or --jwt-jwks-url): mint them \
             with the identity provider, or configure --jwt-secret"
        );
    }
    Ok(development_secret(settings)?.0)
}

/// The embedded default needs a key without configuration, yet must never be
/// an open door: a random secret, created once, kept beside the SQLite file
/// (readable by its owner only), so the service and `token` agree on it.
pub fn development_secret(settings: &Settings) -> anyhow::Result<(SecretSlice<u8>, PathBuf)> {
    let Some(db_file) = store::sqlite_path(settings.database_url.expose()) else {
        anyhow::bail!(
            "no JWT key configured: set --jwt-secret / INVITES_JWT_SECRET (or \
             INVITES_JWT_SECRET_FILE) for HS256, --jwt-public-key / INVITES_JWT_PUBLIC_KEY \
             (RS256/ES256) or --jwt-jwks-url / INVITES_JWT_JWKS_URL"
        );
    };
    let path = PathBuf::from(format!("{}.jwt-secret", db_file.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    match write_private(&path, &URL_SAFE_NO_PAD.encode(bytes)) {
        Ok(()) => {}
        // Made earlier, or by a `token` run at the same moment: use that one.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("cannot write {}", path.display())),
    }
    let secret = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secret.trim();
    // A short or empty file (a crash mid-write) would be a key anyone can
    // guess: refuse it rather than sign with it.
    anyhow::ensure!(
        secret.len() >= 32,
        "the development secret {} is damaged (shorter than 32 bytes): delete it to make a new one",
        path.display()
    );
    Ok((secret.as_bytes().to_vec().into(), path))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_keys_verify_the_algorithm_of_their_type() {
        let rsa = from_pem(include_bytes!("../../../tests/fixtures/rs256-public.pem")).unwrap();
        let ec = from_pem(include_bytes!("../../../tests/fixtures/es256-public.pem")).unwrap();
        assert_eq!(rsa.algorithm, Algorithm::RS256);
        assert_eq!(ec.algorithm, Algorithm::ES256);
    }

    #[test]
    fn a_key_on_another_curve_is_refused_by_name() {
        let err = from_pem(include_bytes!("../../../tests/fixtures/es384-public.pem"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("P-384"), "{err}");
        assert!(from_pem(b"nope").is_err());
    }
}
