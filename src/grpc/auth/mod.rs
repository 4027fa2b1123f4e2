//! Bearer JWT authentication: who the caller is, for every InviteService call.
//! Health and reflection are served without it.
//!
//! Keys come from `keys` (settings → a key or a JWKS), `jwks` keeps a JWKS
//! fresh, `layer` authenticates each call before the service sees it.

mod claims;
pub mod jwks;
pub mod keys;
mod layer;

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

pub use claims::{Claims, DEFAULT_GRANTS_CLAIM, TokenRequest, mint};
pub use jwks::Jwks;
pub use layer::Authenticated;

use crate::domain::Caller;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <JWT>`")]
    Missing,
    #[error("the authorization header is not `Bearer <JWT>`")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token's iss is missing or not the configured issuer")]
    WrongIssuer,
    #[error("the token's aud is missing or does not name the configured audience")]
    WrongAudience,
    #[error("no signing key has the token's kid {0:?}; if it is new, retry shortly")]
    UnknownKey(String),
    #[error("the signing keys are not loaded yet; retry later")]
    KeysUnavailable,
    #[error("the token's sub {0}")]
    BadSubject(String),
    #[error("the token's grants claim {0}")]
    BadGrants(String),
}

impl AuthError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "MISSING_TOKEN",
            Self::Malformed => "MALFORMED_AUTHORIZATION",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::Invalid(_) => "INVALID_TOKEN",
            Self::WrongIssuer => "INVALID_ISSUER",
            Self::WrongAudience => "INVALID_AUDIENCE",
            Self::UnknownKey(_) => "UNKNOWN_SIGNING_KEY",
            Self::KeysUnavailable => "SIGNING_KEYS_UNAVAILABLE",
            Self::BadSubject(_) => "INVALID_SUBJECT",
            Self::BadGrants(_) => "INVALID_GRANTS",
        }
    }
}

/// How tokens are checked.
pub enum VerifyingKey {
    /// HS256.
    Secret(Vec<u8>),
    /// RS256 or ES256, from the PEM's key type.
    PublicKeyPem(Vec<u8>),
    /// RS256 and ES256 keys from a JWKS URL, picked by `kid`.
    Jwks(Jwks),
}

/// A key and the one algorithm it verifies. The token's `alg` must be that
/// one, so an HS256 token can never be checked against a public key (whose
/// bytes anyone could use as an HMAC secret).
pub struct SigningKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithm: Algorithm,
}

#[derive(Clone)]
enum Keys {
    Fixed(Arc<SigningKey>),
    Jwks(Jwks),
}

#[derive(Clone)]
pub struct Authenticator {
    keys: Keys,
    validation: Arc<Validation>,
    grants_claim: Arc<str>,
}

impl Authenticator {
    pub fn new(
        key: VerifyingKey,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<Self> {
        let keys = match key {
            VerifyingKey::Secret(secret) => Keys::Fixed(Arc::new(SigningKey {
                key: DecodingKey::from_secret(&secret),
                algorithm: Algorithm::HS256,
            })),
            VerifyingKey::PublicKeyPem(pem) => Keys::Fixed(Arc::new(keys::from_pem(&pem)?)),
            VerifyingKey::Jwks(jwks) => Keys::Jwks(jwks),
        };
        Ok(Self {
            keys,
            validation: Arc::new(validation(issuer, audience)),
            grants_claim: DEFAULT_GRANTS_CLAIM.into(),
        })
    }

    /// Reads the caller's grants from this claim instead of `invite_grants`
    /// (identity providers often require namespaced custom claims).
    pub fn with_grants_claim(self, name: &str) -> Self {
        Self {
            grants_claim: name.into(),
            ..self
        }
    }

    /// The clock skew allowed on `exp` and `nbf` (60 s unless set).
    pub fn with_leeway(self, leeway: Duration) -> Self {
        let mut validation = (*self.validation).clone();
        validation.leeway = leeway.as_secs();
        Self {
            validation: Arc::new(validation),
            ..self
        }
    }

    /// The caller a `Bearer` header names, or why not, with the keys at hand.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(header)?;
        let key = self.key_for(token)?;
        let mut validation = (*self.validation).clone();
        validation.algorithms = vec![key.algorithm];
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                    AuthError::WrongAudience
                }
                _ => AuthError::Invalid(err.to_string()),
            })?
            .claims;
        claims.into_caller(&self.grants_claim)
    }

    /// As [`Self::authenticate`]; a `kid` the JWKS does not have refetches it
    /// first (at most every few seconds, however many such tokens come).
    pub async fn authenticate_fresh(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let first = self.authenticate(header);
        if let (Err(AuthError::UnknownKey(_)), Keys::Jwks(jwks)) = (&first, &self.keys) {
            jwks.refresh_for_unknown_kid().await;
            return self.authenticate(header);
        }
        first
    }

    fn key_for(&self, token: &str) -> Result<Arc<SigningKey>, AuthError> {
        match &self.keys {
            Keys::Fixed(key) => Ok(key.clone()),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|err| AuthError::Invalid(err.to_string()))?;
                let kid = header
                    .kid
                    .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
                jwks.find(&kid)
            }
        }
    }
}

/// `exp` and `nbf` always, issuer and audience when configured.
fn validation(issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_nbf = true;
    // jsonwebtoken checks iss and aud only when the token has them: a
    // configured one must also be required, or leaving it out would pass.
    let mut required = vec!["exp", "sub"];
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Malformed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::domain::Grant;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

    fn token(sub: &str, email: Option<&str>, admin: bool) -> String {
        let request = TokenRequest {
            sub,
            email,
            admin,
            ttl: Duration::from_secs(60),
            issuer: None,
            audience: None,
            grants: &[],
            grants_claim: DEFAULT_GRANTS_CLAIM,
        };
        format!("Bearer {}", mint(SECRET, &request).unwrap())
    }

    /// Claims for `sub`, valid for a minute, with nothing else.
    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
            email: None,
            email_verified: false,
            phone_number: None,
            phone_number_verified: false,
            scope: None,
            iss: None,
            aud: None,
            other: serde_json::Map::new(),
        }
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(VerifyingKey::Secret(SECRET.to_vec()), None, None).unwrap()
    }

    /// `Bearer <JWT>` of these claims, HS256 under the test secret.
    fn hs256(claims: &impl serde::Serialize) -> String {
        let jwt = jsonwebtoken::encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        format!("Bearer {jwt}")
    }

    #[test]
    fn a_minted_token_names_its_caller() {
        let caller = authenticator()
            .authenticate(Some(&token("alice", Some("Alice@Example.org"), true)))
            .unwrap();
        assert_eq!(caller.user_id.as_str(), "alice");
        assert_eq!(
            caller.verified_email.unwrap().normalized(),
            "alice@example.org"
        );
        assert!(caller.is_admin);
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let auth = authenticator();
        assert_eq!(auth.authenticate(None).unwrap_err(), AuthError::Missing);
        assert_eq!(
            auth.authenticate(Some("Basic x")).unwrap_err(),
            AuthError::Malformed
        );
        assert!(matches!(
            auth.authenticate(Some("Bearer abc")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other =
            Authenticator::new(VerifyingKey::Secret(b"other".to_vec()), None, None).unwrap();
        let header = token("alice", None, false);
        assert!(matches!(
            other.authenticate(Some(&header)),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_sub_outside_the_id_rule_is_refused() {
        let claims = claims("has space");
        let header = hs256(&claims);
        let result = authenticator().authenticate(Some(&header));
        assert!(matches!(result, Err(AuthError::BadSubject(_))));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let claims = Claims {
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            ..claims("alice")
        };
        let header = hs256(&claims);
        let result = authenticator().authenticate(Some(&header));
        assert_eq!(result.unwrap_err(), AuthError::Expired);
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let strict = Authenticator::new(
            VerifyingKey::Secret(SECRET.to_vec()),
            Some("https://id.example"),
            Some("invites"),
        )
        .unwrap();
        assert!(
            strict
                .authenticate(Some(&token("alice", None, false)))
                .is_err()
        );
        let request = TokenRequest {
            sub: "alice",
            email: None,
            admin: false,
            ttl: Duration::from_secs(60),
            issuer: Some("https://id.example"),
            audience: Some("invites"),
            grants: &[],
            grants_claim: DEFAULT_GRANTS_CLAIM,
        };
        let jwt = mint(SECRET, &request).unwrap();
        assert!(strict.authenticate(Some(&format!("Bearer {jwt}"))).is_ok());
    }

    #[test]
    fn a_missing_or_wrong_issuer_or_audience_is_refused_naming_which() {
        let strict = Authenticator::new(
            VerifyingKey::Secret(SECRET.to_vec()),
            Some("https://id.example"),
            Some("invites"),
        )
        .unwrap();
        let signed = |iss: Option<&str>, aud: Option<&str>| {
            let claims = Claims {
                iss: iss.map(str::to_owned),
                aud: aud.map(|aud| serde_json::json!(aud)),
                ..claims("alice")
            };
            let header = hs256(&claims);
            strict.authenticate(Some(&header))
        };
        for (iss, aud, refusal) in [
            (None, Some("invites"), AuthError::WrongIssuer),
            (Some("https://id.example"), None, AuthError::WrongAudience),
            (
                Some("https://other.example"),
                Some("invites"),
                AuthError::WrongIssuer,
            ),
            (
                Some("https://id.example"),
                Some("billing"),
                AuthError::WrongAudience,
            ),
        ] {
            assert_eq!(
                signed(iss, aud).unwrap_err(),
                refusal,
                "iss {iss:?}, aud {aud:?}"
            );
        }
        assert!(signed(Some("https://id.example"), Some("invites")).is_ok());
    }

    fn signed_with(algorithm: Algorithm, private_pem: &[u8]) -> String {
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem).unwrap(),
            _ => EncodingKey::from_ec_pem(private_pem).unwrap(),
        };
        let claims = Claims {
            scope: Some("openid invites:admin".into()),
            ..claims("svc-billing")
        };
        let jwt = jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).unwrap();
        format!("Bearer {jwt}")
    }

    #[test]
    fn an_audience_array_is_accepted() {
        let strict =
            Authenticator::new(VerifyingKey::Secret(SECRET.to_vec()), None, Some("invites"))
                .unwrap();
        let claims = Claims {
            aud: Some(serde_json::json!(["account", "invites"])),
            ..claims("alice")
        };
        let header = hs256(&claims);
        assert!(strict.authenticate(Some(&header)).is_ok());
        assert!(authenticator().authenticate(Some(&header)).is_ok());
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_their_public_keys() {
        let fixtures = [
            (
                Algorithm::RS256,
                &include_bytes!("../../../tests/fixtures/rs256-private.pem")[..],
                &include_bytes!("../../../tests/fixtures/rs256-public.pem")[..],
            ),
            (
                Algorithm::ES256,
                &include_bytes!("../../../tests/fixtures/es256-private.pem")[..],
                &include_bytes!("../../../tests/fixtures/es256-public.pem")[..],
            ),
        ];
        for (algorithm, private_pem, public_pem) in fixtures {
            let auth =
                Authenticator::new(VerifyingKey::PublicKeyPem(public_pem.to_vec()), None, None)
                    .unwrap();
            let caller = auth
                .authenticate(Some(&signed_with(algorithm, private_pem)))
                .unwrap();
            assert_eq!(caller.user_id.as_str(), "svc-billing");
            assert!(caller.is_admin, "{algorithm:?}");
            // An HS256 token is refused by a public-key verifier.
            assert!(
                auth.authenticate(Some(&token("alice", None, false)))
                    .is_err()
            );
        }
    }

    fn with_claims(other: serde_json::Value) -> String {
        let claims = Claims {
            other: serde_json::from_value(other).unwrap(),
            ..claims("alice")
        };
        hs256(&claims)
    }

    #[test]
    fn grants_are_read_from_the_configured_claim_only() {
        const NAMESPACED: &str = "https://example.com/invite_grants";
        let grant = serde_json::json!([{"target_type": "organization", "target_id": "acme", "roles": ["member"]}]);
        let header = with_claims(serde_json::json!({ NAMESPACED: grant }));
        let namespaced = authenticator().with_grants_claim(NAMESPACED);
        let grants = namespaced.authenticate(Some(&header)).unwrap().grants;
        let grants: Vec<String> = grants.iter().map(ToString::to_string).collect();
        assert_eq!(grants, ["organization/acme=member"]);
        // The default claim name reads nothing from a namespaced claim.
        assert!(
            authenticator()
                .authenticate(Some(&header))
                .unwrap()
                .grants
                .is_empty()
        );
    }

    #[test]
    fn a_malformed_grants_claim_refuses_the_token() {
        for bad in [
            serde_json::json!("organization/acme"),
            serde_json::json!([{"target_type": "organization"}]),
            serde_json::json!([{"target_type": "Org", "target_id": "acme"}]),
            serde_json::json!([{"target_type": "org", "target_id": "acme", "roles": "owner"}]),
        ] {
            let header = with_claims(serde_json::json!({ DEFAULT_GRANTS_CLAIM: bad }));
            let err = authenticator().authenticate(Some(&header)).unwrap_err();
            assert_eq!(err.reason(), "INVALID_GRANTS", "{bad}");
        }
    }

    #[test]
    fn minted_grants_read_back_as_given() {
        let grants: Vec<Grant> = ["organization/acme=admin,member", "party/*"]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect();
        let request = TokenRequest {
            sub: "alice",
            email: None,
            admin: false,
            ttl: Duration::from_secs(60),
            issuer: None,
            audience: None,
            grants: &grants,
            grants_claim: DEFAULT_GRANTS_CLAIM,
        };
        let jwt = mint(SECRET, &request).unwrap();
        let caller = authenticator()
            .authenticate(Some(&format!("Bearer {jwt}")))
            .unwrap();
        assert_eq!(caller.grants, grants);
    }

    #[test]
    fn a_public_key_that_is_not_pem_is_refused_at_start() {
        let result = Authenticator::new(VerifyingKey::PublicKeyPem(b"nope".to_vec()), None, None);
        assert!(result.is_err());
    }

    #[test]
    fn email_verified_is_true_only_as_true_or_the_string_true() {
        let now = jsonwebtoken::get_current_timestamp();
        for (flag, verified) in [
            (serde_json::json!(true), true),
            (serde_json::json!("true"), true),
            (serde_json::json!("false"), false),
            (serde_json::json!("yes"), false),
            (serde_json::json!(1), false),
            (serde_json::json!(false), false),
        ] {
            let claims = serde_json::json!({
                "sub": "bob", "exp": now + 60, "email": "bob@example.org", "email_verified": flag,
                "phone_number": "+14155550100", "phone_number_verified": flag,
            });
            let caller = authenticator().authenticate(Some(&hs256(&claims))).unwrap();
            assert_eq!(caller.verified_email.is_some(), verified, "{flag}");
            assert_eq!(caller.verified_phone.is_some(), verified, "{flag}");
        }
    }

    #[test]
    fn nbf_is_checked_with_the_leeway() {
        let now = jsonwebtoken::get_current_timestamp();
        let soon = hs256(&serde_json::json!({ "sub": "a", "exp": now + 600, "nbf": now + 30 }));
        let later = hs256(&serde_json::json!({ "sub": "a", "exp": now + 600, "nbf": now + 300 }));
        let strict = authenticator().with_leeway(Duration::from_secs(5));

        assert!(authenticator().authenticate(Some(&soon)).is_ok());
        assert_eq!(
            strict.authenticate(Some(&soon)).unwrap_err(),
            AuthError::NotYetValid
        );
        assert_eq!(
            authenticator().authenticate(Some(&later)).unwrap_err(),
            AuthError::NotYetValid
        );
    }
}
