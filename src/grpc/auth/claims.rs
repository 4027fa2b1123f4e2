//! The claims this service reads from a bearer token, and the development
//! tokens `invite-service token` mints.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Deserializer, Serialize};

use super::AuthError;
use crate::domain::{Caller, Email, Grant, Id, Phone};

/// The claim that lists what a caller may invite to, unless configured otherwise.
pub const DEFAULT_GRANTS_CLAIM: &str = "invite_grants";

/// The claims this service reads (and `token` writes). `email_verified` and
/// `phone_number_verified` are the OpenID Connect standard claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "verified_flag")]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(
        default,
        deserialize_with = "verified_flag",
        skip_serializing_if = "std::ops::Not::not"
    )]
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

/// `true`, or the string "true" (some identity providers, Cognito among
/// them, send strings). Anything else verifies nothing: an address whose
/// verification cannot be read identifies nobody, but the caller is still
/// authenticated by `sub`.
fn verified_flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Bool(flag) => flag,
        serde_json::Value::String(text) => text == "true",
        _ => false,
    })
}

impl Claims {
    /// The caller these claims name, with grants read from `grants_claim`.
    pub(super) fn into_caller(mut self, grants_claim: &str) -> Result<Caller, AuthError> {
        let user_id = Id::parse(&self.sub).map_err(AuthError::BadSubject)?;
        let grants = grants_from(self.other.remove(grants_claim))?;
        // An unverified or malformed address identifies nobody; the caller is
        // still authenticated by `sub`.
        let verified_email = self
            .email
            .filter(|_| self.email_verified)
            .and_then(|raw| Email::parse(&raw).ok());
        let verified_phone = self
            .phone_number
            .filter(|_| self.phone_number_verified)
            .and_then(|raw| Phone::parse(&raw).ok());
        let is_admin = self
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

/// One entry of the grants claim, as identity providers write it.
#[derive(Debug, Serialize, Deserialize)]
struct GrantClaim {
    target_type: String,
    target_id: String,
    /// Missing or empty: any role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
}

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
