//! Idempotency keys (AIP-155): a retry with the same `request_id` gets the
//! first answer back, token included, and nothing is written twice.
//!
//! Implementation notes: the answer must return the token, which the service
//! never stores in plain text. It is kept sealed: XORed with a pad derived
//! from the caller and the request id, which is itself kept only as a hash.
//! Request ids must be UUIDs, so the pad cannot be guessed from the database.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Id, InviteError, InviteToken};

/// A request's idempotency key and what the request said.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    request_id: Uuid,
    /// SHA-256 of the request without its request id.
    fingerprint: String,
}

impl IdempotencyKey {
    /// None for an empty request id (no idempotency asked).
    pub fn parse(request_id: &str, request_bytes: &[u8]) -> Result<Option<Self>, InviteError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        // Random UUIDs only: the request id is what keeps the sealed token
        // secret, so a guessable one (nil, sequential, hand-made) is refused.
        let request_id = Uuid::parse_str(request_id)
            .ok()
            .filter(|id| matches!(id.get_version_num(), 4 | 7))
            .ok_or_else(|| {
                InviteError::invalid("request_id", "must be a random UUID (version 4 or 7)")
            })?;
        Ok(Some(Self {
            request_id,
            fingerprint: hex(&Sha256::digest(request_bytes)),
        }))
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where the answer is stored: per RPC and caller, so one caller's key
    /// never replays another's answer.
    pub fn storage_key(&self, rpc: &str, caller: &Id) -> String {
        hex(&Sha256::digest(self.material("key", rpc, caller, 0)))
    }

    pub fn seal(&self, rpc: &str, caller: &Id, index: usize, token: &InviteToken) -> String {
        let plain = token.expose().as_bytes();
        hex(&xor(plain, &self.pad(rpc, caller, index, plain.len())))
    }

    pub fn unseal(
        &self,
        rpc: &str,
        caller: &Id,
        index: usize,
        sealed: &str,
    ) -> Option<InviteToken> {
        let cipher = unhex(sealed)?;
        let plain = xor(&cipher, &self.pad(rpc, caller, index, cipher.len()));
        InviteToken::parse(std::str::from_utf8(&plain).ok()?).ok()
    }

    fn material(&self, purpose: &str, rpc: &str, caller: &Id, index: usize) -> Vec<u8> {
        format!(
            "invites.v1/{purpose}/{rpc}/{caller}/{}/{index}",
            self.request_id
        )
        .into_bytes()
    }

    fn pad(&self, rpc: &str, caller: &Id, index: usize, len: usize) -> Vec<u8> {
        let seed = self.material("seal", rpc, caller, index);
        (0u8..)
            .flat_map(|block| {
                let mut hasher = Sha256::new();
                hasher.update(&seed);
                hasher.update([block]);
                hasher.finalize()
            })
            .take(len)
            .collect()
    }
}

fn xor(data: &[u8], pad: &[u8]) -> Vec<u8> {
    data.iter().zip(pad).map(|(d, p)| d ^ p).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(request: &[u8]) -> IdempotencyKey {
        IdempotencyKey::parse("0196a3c2-5f1e-7c9a-8b1d-2e3f4a5b6c7d", request)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_with_the_same_caller_and_index() {
        let token = InviteToken::generate();
        let alice = Id::parse("alice").unwrap();
        let sealed = key(b"r").seal("create", &alice, 0, &token);
        assert!(!sealed.contains(token.expose()));
        assert_eq!(
            key(b"r").unseal("create", &alice, 0, &sealed),
            Some(token.clone())
        );
        let bob = Id::parse("bob").unwrap();
        assert_ne!(
            key(b"r").unseal("create", &bob, 0, &sealed),
            Some(token.clone())
        );
        assert_ne!(key(b"r").unseal("create", &alice, 1, &sealed), Some(token));
    }

    #[test]
    fn keys_are_per_caller_and_fingerprints_per_request() {
        let alice = Id::parse("alice").unwrap();
        let bob = Id::parse("bob").unwrap();
        assert_ne!(
            key(b"r").storage_key("create", &alice),
            key(b"r").storage_key("create", &bob)
        );
        assert_ne!(key(b"r").fingerprint(), key(b"s").fingerprint());
    }

    #[test]
    fn request_ids_must_be_uuids() {
        assert!(IdempotencyKey::parse("", b"").unwrap().is_none());
        assert!(IdempotencyKey::parse("retry-1", b"").is_err());
        assert!(IdempotencyKey::parse(&Uuid::nil().to_string(), b"").is_err());
        assert!(
            IdempotencyKey::parse("6f1c2a3e-4b5d-4c7e-9f80-1a2b3c4d5e6f", b"")
                .unwrap()
                .is_some()
        );
    }
}
