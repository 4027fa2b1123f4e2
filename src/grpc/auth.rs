//! Bearer JWT authentication: who the caller is, for every InviteService call.
//! Health and reflection are served without it.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};

use crate::domain::{Caller, Email, Grant, Id, Phone};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <JWT>`")]
    Missing,
    #[error("the authorization header is not `Bearer <JWT>`")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
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
            Self::Invalid(_) => "INVALID_TOKEN",
            Self::BadSubject(_) => "INVALID_SUBJECT",
            Self::BadGrants(_) => "INVALID_GRANTS",
        }
    }
}

/// The claims this service reads (and `token` writes). `email_verified` and
/// `phone_number_verified` are the OpenID Connect standard claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phone_number_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string or an array of strings (identity providers send both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Every other claim: the grants claim's name is configurable.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One entry of the grants claim, as identity providers write it.
#[derive(Debug, Serialize, Deserialize)]
struct GrantClaim {
    target_type: String,
    target_id: String,
    /// Missing or empty: any role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
}

/// The claim that lists what a caller may invite to, unless configured otherwise.
pub const DEFAULT_GRANTS_CLAIM: &str = "invite_grants";

/// Reads the grants claim. A claim that is there but malformed refuses the
/// token: granting less than the identity provider meant would surprise as
/// much as granting more.
fn grants_from(claim: Option<serde_json::Value>) -> Result<Vec<Grant>, AuthError> {
    let Some(claim) = claim else {
        return Ok(Vec::new());
    };
    let entries: Vec<GrantClaim> = serde_json::from_value(claim).map_err(|_| {
        AuthError::BadGrants(
            "must be a list of {\"target_type\", \"target_id\", \"roles\"} objects".into(),
        )
    })?;
    entries
        .iter()
        .map(|entry| Grant::parse(&entry.target_type, &entry.target_id, &entry.roles))
        .collect::<Result<_, _>>()
        .map_err(AuthError::BadGrants)
}

fn grants_claim_value(grants: &[Grant]) -> serde_json::Value {
    let entries: Vec<GrantClaim> = grants
        .iter()
        .map(|grant| GrantClaim {
            target_type: grant.target_type().to_owned(),
            target_id: grant.target_id().to_owned(),
            roles: grant.roles().map(str::to_owned).collect(),
        })
        .collect();
    serde_json::to_value(entries).expect("grants serialize to JSON")
}

/// How tokens are checked.
pub enum VerifyingKey {
    /// HS256.
    Secret(Vec<u8>),
    /// RS256 or ES256, from the PEM's key type.
    PublicKeyPem(Vec<u8>),
}

#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<(DecodingKey, Validation)>,
    grants_claim: Arc<str>,
}

impl Authenticator {
    pub fn new(
        key: VerifyingKey,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (decoding_key, algorithm) = match key {
            VerifyingKey::Secret(secret) => (DecodingKey::from_secret(&secret), Algorithm::HS256),
            VerifyingKey::PublicKeyPem(pem) => match DecodingKey::from_rsa_pem(&pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(_) => (
                    DecodingKey::from_ec_pem(&pem).map_err(|_| {
                        anyhow::anyhow!("the JWT public key is neither an RSA nor an EC (P-256) public key in PEM")
                    })?,
                    Algorithm::ES256,
                ),
            },
        };
        let mut validation = Validation::new(algorithm);
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
        Ok(Self {
            inner: Arc::new((decoding_key, validation)),
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

    /// The caller a `Bearer` header names, or why not.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        let (key, validation) = &*self.inner;
        let mut claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(err.to_string()),
            })?
            .claims;
        let user_id = Id::parse(&claims.sub).map_err(AuthError::BadSubject)?;
        let grants = grants_from(claims.other.remove(&*self.grants_claim))?;
        // An unverified or malformed address identifies nobody; the caller is
        // still authenticated by `sub`.
        let verified_email = claims
            .email
            .filter(|_| claims.email_verified)
            .and_then(|raw| Email::parse(&raw).ok());
        let verified_phone = claims
            .phone_number
            .filter(|_| claims.phone_number_verified)
            .and_then(|raw| Phone::parse(&raw).ok());
        let is_admin = claims
            .scope
            .is_some_and(|scope| scope.split_whitespace().any(|s| s == Caller::ADMIN_SCOPE));
        Ok(Caller {
            user_id,
            verified_email,
            verified_phone,
            is_admin,
            grants,
        })
    }
}

/// Puts the authenticated [`Caller`] into the request's extensions.
impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().map_err(|_| AuthError::Malformed))
            .transpose()?;
        let caller = self.authenticate(header)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// What `invite-service token` mints: an HS256 development token.
pub struct TokenRequest<'a> {
    pub sub: &'a str,
    pub email: Option<&'a str>,
    pub admin: bool,
    pub ttl: std::time::Duration,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub grants: &'a [Grant],
    /// The claim the grants go in.
    pub grants_claim: &'a str,
}

pub fn mint(secret: &[u8], request: &TokenRequest<'_>) -> anyhow::Result<String> {
    Id::parse(request.sub).map_err(|why| anyhow::anyhow!("--sub {why}"))?;
    if let Some(email) = request.email {
        Email::parse(email).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    }
    let exp = jsonwebtoken::get_current_timestamp() + request.ttl.as_secs();
    let claims = Claims {
        sub: request.sub.to_owned(),
        exp,
        email: request.email.map(str::to_owned),
        email_verified: request.email.is_some(),
        phone_number: None,
        phone_number_verified: false,
        scope: request.admin.then(|| Caller::ADMIN_SCOPE.to_owned()),
        iss: request.issuer.map(str::to_owned),
        aud: request
            .audience
            .map(|aud| serde_json::Value::String(aud.to_owned())),
        other: if request.grants.is_empty() {
            serde_json::Map::new()
        } else {
            [(
                request.grants_claim.to_owned(),
                grants_claim_value(request.grants),
            )]
            .into_iter()
            .collect()
        },
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
        let jwt = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let result = authenticator().authenticate(Some(&format!("Bearer {jwt}")));
        assert!(matches!(result, Err(AuthError::BadSubject(_))));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let claims = Claims {
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            ..claims("alice")
        };
        let jwt = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let result = authenticator().authenticate(Some(&format!("Bearer {jwt}")));
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
        let jwt = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(strict.authenticate(Some(&format!("Bearer {jwt}"))).is_ok());
        assert!(
            authenticator()
                .authenticate(Some(&format!("Bearer {jwt}")))
                .is_ok()
        );
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_their_public_keys() {
        let fixtures = [
            (
                Algorithm::RS256,
                &include_bytes!("../../tests/fixtures/rs256-private.pem")[..],
                &include_bytes!("../../tests/fixtures/rs256-public.pem")[..],
            ),
            (
                Algorithm::ES256,
                &include_bytes!("../../tests/fixtures/es256-private.pem")[..],
                &include_bytes!("../../tests/fixtures/es256-public.pem")[..],
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
        let jwt = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        format!("Bearer {jwt}")
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
}
