//! The invite's value types. Each has one way in, `parse`, which refuses bad
//! input with a sentence a caller can act on; past the edge, code trusts them.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A user, target or other external id: 1-128 characters of `[A-Za-z0-9._:@|-]`,
/// wide enough for UUIDs, ULIDs, `auth0|123` and `org:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@|-".contains(c);
        if !raw.chars().all(allowed) {
            return Err("may contain only letters, digits and . _ : @ | -".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lower-case identifier such as `organization` or `admin`: a letter, then
/// letters, digits or `_`, at most 64 characters. Target types and roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if !starts_with_letter || !rest_ok {
            return Err(
                "must be a lower-case identifier: a letter, then letters, digits or _".into(),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked by an RFC 5322 parser. Kept as given for display;
/// compared through [`Email::normalized`], because every comparison of emails
/// in this service is case-insensitive.
#[derive(Debug, Clone)]
pub struct Email {
    given: String,
    normalized: String,
}

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        // A bare address on a dotted domain: no "Ann <ann@x.org>" display
        // form, no [127.0.0.1] literal, no dotless intranet host.
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
        };
        let parsed = email_address::EmailAddress::parse_with_options(trimmed, options)
            .map_err(|e| format!("is not a valid email address: {e}"))?;
        if parsed.as_str() != trimmed {
            return Err(
                "is not a valid email address: expected a bare address like ann@example.org".into(),
            );
        }
        Ok(Self {
            given: trimmed.to_owned(),
            normalized: trimmed.to_ascii_lowercase(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.given
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn domain(&self) -> &str {
        self.normalized.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}
impl Eq for Email {}

/// An email domain an open link is restricted to, lower-cased (`example.org`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailDomain(String);

impl EmailDomain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let domain = raw.trim().trim_start_matches('@').to_ascii_lowercase();
        Email::parse(&format!("user@{domain}"))
            .map(|_| Self(domain))
            .map_err(|_| format!("{} is not a valid email domain", super::error::quoted(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164: `+`, then 2 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let valid = (2..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err("must be an E.164 phone number such as +447700900123".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret an invitee presents: 256 bits from the OS CSPRNG, URL-safe base64.
/// Never stored: the store keeps [`InviteToken::digest`] only.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteToken(String);

/// The SHA-256 of a token, hex-encoded: what the store keeps and looks up by.
/// A fast hash is enough: the token has 256 bits of entropy, nothing to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDigest(String);

impl InviteToken {
    const BYTES: usize = 32;
    const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks the shape only; whether it names an invite is the store's answer.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(url_safe) {
            return Err("is not an invite token".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> TokenDigest {
        let hash = Sha256::digest(self.0.as_bytes());
        TokenDigest(hash.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteToken(<redacted>)")
    }
}

impl TokenDigest {
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time, so that comparing never tells how much of a guess matched.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_ascii_case_only() {
        let ascii = Email::parse("Kelvin@Example.org").unwrap();
        assert_eq!(ascii, Email::parse("kelvin@example.org").unwrap());
        // The Kelvin sign lower-cases to `k` under Unicode rules: folding it
        // would let one address claim invites sent to another.
        let kelvin_sign = Email::parse("\u{212A}elvin@example.org").unwrap();
        assert_ne!(kelvin_sign, ascii);
        assert_eq!(kelvin_sign.normalized(), "\u{212A}elvin@example.org");
        let domain = EmailDomain::parse("\u{212A}.example.org");
        assert_ne!(
            domain.map(|d| d.as_str().to_owned()).ok().as_deref(),
            Some("k.example.org")
        );
    }

    #[test]
    fn ids_allow_common_external_formats_and_refuse_others() {
        for ok in ["u1", "auth0|123", "org:42", "a.b-c_d@e", &"x".repeat(128)] {
            assert!(Id::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "slash/", "ünicode", &"x".repeat(129)] {
            assert!(Id::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_lower_case_and_start_with_a_letter() {
        assert!(Identifier::parse("account_group").is_ok());
        for bad in ["", "Organization", "1org", "org-x", &"a".repeat(65)] {
            assert!(Identifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_compare_case_insensitively() {
        let a = Email::parse("  Ann@Example.ORG ").unwrap();
        assert_eq!(a.as_str(), "Ann@Example.ORG");
        assert_eq!(a, Email::parse("ann@example.org").unwrap());
        assert_eq!(a.domain(), "example.org");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "ann@x",
            "Ann <ann@x.org>",
            "a b@x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_must_be_e164() {
        assert!(Phone::parse("+447700900123").is_ok());
        for bad in [
            "447700900123",
            "+0123",
            "+1",
            "+12345678901234567",
            "+44 7700",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_long_url_safe_and_unique() {
        let a = InviteToken::generate();
        let b = InviteToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(InviteToken::parse(a.expose()).is_ok());
        assert!(
            a.digest()
                .matches(&InviteToken::parse(a.expose()).unwrap().digest())
        );
        assert!(!a.digest().matches(&b.digest()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn token_shapes_that_cannot_be_tokens_are_refused() {
        for bad in ["", "has space", "a/b", &"a".repeat(129)] {
            assert!(InviteToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_domains_are_normalized() {
        assert_eq!(
            EmailDomain::parse("@Example.org").unwrap().as_str(),
            "example.org"
        );
        assert!(EmailDomain::parse("not a domain").is_err());
    }
}
