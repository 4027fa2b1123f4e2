//! Passcodes: a second secret an invite may ask for on acceptance. Stored as
//! argon2id hashes with a random salt (PHC strings), never in plain text.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

/// A passcode as given: 4 to 64 characters, no control characters.
#[derive(Clone)]
pub struct Passcode(String);

impl Passcode {
    pub const MIN_CHARS: usize = 4;
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(format!(
                "must be {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// Slow on purpose (argon2id, the crate's default cost): run it off the
    /// async runtime's threads.
    pub fn hash(&self) -> PasscodeHash {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 with its default parameters hashes any input");
        PasscodeHash(hash.to_string())
    }
}

impl std::fmt::Debug for Passcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passcode(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasscodeHash(String);

impl PasscodeHash {
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Slow on purpose, like [`Passcode::hash`]. A malformed stored hash
    /// matches nothing.
    pub fn verify(&self, given: &str) -> bool {
        PasswordHash::new(&self.0).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(given.as_bytes(), &hash)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_passcode_only() {
        let hash = Passcode::parse("open sesame").unwrap().hash();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(hash.verify("open sesame"));
        assert!(!hash.verify("open sesame "));
    }

    #[test]
    fn the_same_passcode_hashes_differently_each_time() {
        let passcode = Passcode::parse("1234").unwrap();
        assert_ne!(passcode.hash(), passcode.hash());
    }

    #[test]
    fn passcode_shapes_are_limited() {
        assert!(Passcode::parse("123").is_err());
        assert!(Passcode::parse(&"x".repeat(65)).is_err());
        assert!(Passcode::parse("12\n34").is_err());
        assert!(format!("{:?}", Passcode::parse("1234").unwrap()).contains("redacted"));
    }
}
