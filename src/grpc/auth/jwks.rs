//! Keys from a JWKS URL: fetched at start (retried until they come, while
//! health says NOT_SERVING), again on a timer, and again when a token names a
//! `kid` the set lacks — at most once per [`UNKNOWN_KID_COOLDOWN`], so that
//! forged kids cannot make the service hammer the identity provider.
//!
//! Implementation notes: only RS256 (RSA) and ES256 (P-256) signature keys
//! with a `kid` are used. A key whose `alg` does not fit its type, a
//! symmetric (`oct`) key or any other kind is skipped with a warning: each key
//! verifies exactly one algorithm, so a token cannot choose a weaker one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use tokio::{sync::watch, time::Instant};

use super::{AuthError, SigningKey};

/// How often, at most, a token with an unknown `kid` refetches the JWKS.
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(10);
/// One fetch, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Real key sets are a few KiB; anything this large is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

type KeySet = HashMap<String, Arc<SigningKey>>;

/// The keys of one JWKS URL, shared by every call.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    url: hyper::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    refresh_every: Duration,
    /// None until the first fetch succeeds.
    keys: watch::Sender<Option<Arc<KeySet>>>,
    /// When the last fetch started, failed or not: the cooldown counts from it.
    last_fetch: Mutex<Option<Instant>>,
    /// One fetch at a time; a call waiting for a key waits for the fetch
    /// under way rather than starting another.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// Nothing is fetched yet: see [`Jwks::keep_fresh`].
    pub fn new(url: &str, refresh_every: Duration) -> anyhow::Result<Self> {
        let url: hyper::Uri = url.parse().context("the JWKS URL does not parse")?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .context("TLS for the JWKS URL")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                client: Client::builder(TokioExecutor::new()).build(https),
                refresh_every,
                keys: watch::Sender::new(None),
                last_fetch: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Whether keys have been fetched: until then the service is not ready.
    pub fn is_loaded(&self) -> bool {
        self.inner.keys.borrow().is_some()
    }

    pub(super) fn find(&self, kid: &str) -> Result<Arc<SigningKey>, AuthError> {
        let keys = self.inner.keys.borrow();
        let keys = keys.as_ref().ok_or(AuthError::KeysUnavailable)?;
        keys.get(kid)
            .cloned()
            // The kid is the caller's own input; bounded, it may be echoed.
            .ok_or_else(|| AuthError::UnknownKey(kid.chars().take(64).collect()))
    }

    /// Fetches the set now.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let _one = self.inner.fetching.lock().await;
        self.fetch_and_install().await
    }

    /// A token named a kid the set lacks: fetch again, unless a fetch
    /// started within the cooldown (then the caller looks once more at what
    /// that fetch brought).
    pub(super) async fn refresh_for_unknown_kid(&self) {
        let _one = self.inner.fetching.lock().await;
        let recent = self
            .inner
            .last_fetch
            .lock()
            .expect("not poisoned")
            .is_some_and(|at| at.elapsed() < UNKNOWN_KID_COOLDOWN);
        if recent {
            return;
        }
        if let Err(err) = self.fetch_and_install().await {
            tracing::warn!(
                error = format!("{err:#}"),
                "refreshing the JWKS for an unknown kid failed"
            );
        }
    }

    /// Fetches until the first set arrives (backing off), then every
    /// refresh interval; a failed refresh keeps the keys already held.
    pub async fn keep_fresh(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let wait = match self.refresh().await {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    self.inner.refresh_every
                }
                Err(err) => {
                    let held = if self.is_loaded() {
                        "keeping the keys already fetched"
                    } else {
                        "no keys yet: NOT_SERVING"
                    };
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "fetching the JWKS failed; {held}; retrying"
                    );
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch_and_install(&self) -> anyhow::Result<()> {
        *self.inner.last_fetch.lock().expect("not poisoned") = Some(Instant::now());
        let body = self.fetch().await?;
        let (keys, skipped) = parse_key_set(&body)?;
        anyhow::ensure!(
            !keys.is_empty(),
            "the JWKS has no RS256 or ES256 signing key with a kid"
        );
        let old = self.inner.keys.borrow().clone();
        let changed = old.is_none_or(|old| !same_kids(&old, &keys));
        if changed {
            let mut kids: Vec<&String> = keys.keys().collect();
            kids.sort();
            tracing::info!(?kids, ?skipped, "signing keys loaded from the JWKS");
        }
        self.inner.keys.send_replace(Some(Arc::new(keys)));
        Ok(())
    }

    async fn fetch(&self) -> anyhow::Result<Bytes> {
        let request = hyper::Request::get(self.inner.url.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())?;
        let fetch = async {
            let response = self
                .inner
                .client
                .request(request)
                .await
                .context("cannot reach the JWKS URL")?;
            anyhow::ensure!(
                response.status().is_success(),
                "the JWKS URL answered {}",
                response.status()
            );
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|err| anyhow::anyhow!("reading the JWKS: {err}"))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .with_context(|| format!("the JWKS URL did not answer within {FETCH_TIMEOUT:?}"))?
    }
}

fn same_kids(old: &KeySet, new: &KeySet) -> bool {
    old.len() == new.len() && new.keys().all(|kid| old.contains_key(kid))
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys by kid, and why the others were skipped.
fn parse_key_set(body: &[u8]) -> anyhow::Result<(KeySet, Vec<String>)> {
    let raw: RawSet = serde_json::from_slice(body).context("the JWKS is not a JSON key set")?;
    let mut keys = KeySet::new();
    let mut skipped = Vec::new();
    for value in raw.keys {
        let usable = serde_json::from_value::<Jwk>(value)
            .map_err(|err| format!("unreadable key: {err}"))
            .and_then(|jwk| signing_key(&jwk));
        match usable {
            Ok(Some((kid, key))) => {
                keys.insert(kid, Arc::new(key));
            }
            Ok(None) => {}
            Err(why) => skipped.push(why),
        }
    }
    Ok((keys, skipped))
}

/// The key and its one algorithm, None for a key not meant for signatures
/// or without a kid, or why it cannot be used.
fn signing_key(jwk: &Jwk) -> Result<Option<(String, SigningKey)>, String> {
    let for_signatures = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|usage| *usage == PublicKeyUse::Signature);
    let Some(kid) = jwk.common.key_id.clone().filter(|_| for_signatures) else {
        return Ok(None);
    };
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return Err(format!("{kid}: only RSA and P-256 EC keys are used")),
    };
    let declared = jwk.common.key_algorithm;
    let fits = match declared {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !fits {
        return Err(format!(
            "{kid}: its alg {declared:?} does not fit its key type"
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|err| format!("{kid}: {err}"))?;
    Ok(Some((kid, SigningKey { key, algorithm })))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    fn jwk(algorithm: Algorithm, kid: &str) -> serde_json::Value {
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(include_bytes!(
                "../../../tests/fixtures/rs256-private.pem"
            )),
            _ => EncodingKey::from_ec_pem(include_bytes!(
                "../../../tests/fixtures/es256-private.pem"
            )),
        }
        .unwrap();
        let mut jwk = Jwk::from_encoding_key(&key, algorithm).unwrap();
        jwk.common.key_id = Some(kid.into());
        serde_json::to_value(jwk).unwrap()
    }

    fn parse(keys: serde_json::Value) -> (KeySet, Vec<String>) {
        parse_key_set(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rsa_and_p256_keys_are_kept_by_kid_with_their_one_algorithm() {
        let (keys, skipped) = parse(json!([
            jwk(Algorithm::RS256, "r"),
            jwk(Algorithm::ES256, "e")
        ]));
        assert_eq!(keys["r"].algorithm, Algorithm::RS256);
        assert_eq!(keys["e"].algorithm, Algorithm::ES256);
        assert!(skipped.is_empty());
    }

    #[test]
    fn keys_that_cannot_be_trusted_are_skipped_and_said_why() {
        let mut mislabelled = jwk(Algorithm::RS256, "mislabelled");
        mislabelled["alg"] = json!("ES256");
        let mut encryption = jwk(Algorithm::RS256, "enc");
        encryption["use"] = json!("enc");
        let mut no_kid = jwk(Algorithm::RS256, "x");
        no_kid.as_object_mut().unwrap().remove("kid");
        let hmac = json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256" });

        let (keys, skipped) = parse(json!([mislabelled, encryption, no_kid, hmac, {"kty": "?"}]));

        assert!(keys.is_empty(), "{:?}", keys.keys().collect::<Vec<_>>());
        assert_eq!(skipped.len(), 2, "{skipped:?}");
    }

    #[test]
    fn what_is_not_a_key_set_is_an_error() {
        assert!(parse_key_set(b"<html>").is_err());
        assert!(parse_key_set(b"{\"keys\": 3}").is_err());
    }
}
