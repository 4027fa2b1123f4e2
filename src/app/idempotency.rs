//! Idempotency keys (AIP-155): a retry with the same `request_id` gets the
//! first answer back, token included, and nothing is written twice.
//!
//! Implementation notes: the answer must return the token, which the service
//! never stores in plain text. It is sealed with ChaCha20-Poly1305 under a
//! key derived (HKDF-SHA256) from a server-side secret and the request: the
//! RPC, the caller and the request id, which is itself kept only as a hash.
//! So the database alone, even with the request id, opens nothing; and a seal
//! altered in the database is refused, never replayed as another token.

use std::sync::Arc;

use chacha20poly1305::{
    AeadCore as _, ChaCha20Poly1305, KeyInit as _, Nonce,
    aead::{Aead as _, OsRng, Payload},
};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Id, InviteError, InviteToken};

/// ChaCha20-Poly1305's nonce, stored before the ciphertext.
const NONCE_LEN: usize = 12;

/// A request's idempotency key and what the request said.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    request_id: Uuid,
    /// SHA-256 of the request without its request id.
    fingerprint: String,
}

/// The server-side secret replayed tokens are sealed under.
#[derive(Clone)]
pub struct ReplaySeal {
    secret: Arc<Hkdf<Sha256>>,
}

impl ReplaySeal {
    /// From a secret of at least 32 bytes. The salt sets this use apart from
    /// any other the secret has (it may be the HS256 secret).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: Arc::new(Hkdf::new(Some(b"invites.v1/replay-seal"), secret)),
        }
    }

    /// The cipher of one request's answer. Ids never contain NUL, so the
    /// parts cannot run into each other.
    fn cipher(&self, key: &IdempotencyKey, rpc: &str, caller: &Id) -> ChaCha20Poly1305 {
        let mut derived = [0u8; 32];
        self.secret
            .expand_multi_info(
                &[
                    rpc.as_bytes(),
                    b"\0",
                    caller.as_str().as_bytes(),
                    b"\0",
                    key.request_id.as_bytes(),
                ],
                &mut derived,
            )
            .expect("32 bytes is a valid HKDF-SHA256 length");
        ChaCha20Poly1305::new(&derived.into())
    }
}

impl IdempotencyKey {
    /// None for an empty request id (no idempotency asked).
    pub fn parse(request_id: &str, request_bytes: &[u8]) -> Result<Option<Self>, InviteError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        // Random UUIDs only: a guessable key (nil, sequential, hand-made)
        // could be claimed by a retry that is not one.
        let request_id = Uuid::parse_str(request_id)
            .ok()
            .filter(|id| matches!(id.get_version_num(), 4 | 7))
            .ok_or_else(|| {
                InviteError::invalid("request_id", "must be a random UUID (version 4 or 7)")
            })?;
        Ok(Some(Self {
            request_id,
            fingerprint: hex::encode(Sha256::digest(request_bytes)),
        }))
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where the answer is stored: per RPC and caller, so one caller's key
    /// never replays another's answer.
    pub fn storage_key(&self, rpc: &str, caller: &Id) -> String {
        let material = format!("invites.v1/key/{rpc}/{caller}/{}/0", self.request_id);
        hex::encode(Sha256::digest(material))
    }

    /// The `index`th token of the answer, sealed: hex of nonce ‖ ciphertext.
    /// The index is authenticated, so sealed tokens cannot swap places.
    pub fn seal(
        &self,
        seal: &ReplaySeal,
        rpc: &str,
        caller: &Id,
        index: usize,
        token: &InviteToken,
    ) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = (index as u64).to_be_bytes();
        let payload = Payload {
            msg: token.expose().as_bytes(),
            aad: &aad,
        };
        let sealed = seal
            .cipher(self, rpc, caller)
            .encrypt(&nonce, payload)
            .expect("sealing in memory does not fail");
        hex::encode([&nonce[..], &sealed].concat())
    }

    /// The token [`Self::seal`] sealed, or None if the seal was made with
    /// another secret, for another request or index, or altered.
    pub fn unseal(
        &self,
        seal: &ReplaySeal,
        rpc: &str,
        caller: &Id,
        index: usize,
        sealed: &str,
    ) -> Option<InviteToken> {
        let bytes = hex::decode(sealed).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = (index as u64).to_be_bytes();
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        let plain = seal
            .cipher(self, rpc, caller)
            .decrypt(&Nonce::from(nonce), payload)
            .ok()?;
        InviteToken::parse(std::str::from_utf8(&plain).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(request: &[u8]) -> IdempotencyKey {
        IdempotencyKey::parse("0196a3c2-5f1e-7c9a-8b1d-2e3f4a5b6c7d", request)
            .unwrap()
            .unwrap()
    }

    fn server() -> ReplaySeal {
        ReplaySeal::new(b"server-secret-server-secret-server-secret")
    }

    #[test]
    fn a_sealed_token_opens_only_with_the_same_secret_caller_and_index() {
        let token = InviteToken::generate();
        let alice = Id::parse("alice").unwrap();
        let sealed = key(b"r").seal(&server(), "create", &alice, 0, &token);
        let stored = hex::decode(&sealed).unwrap();
        let clear = token.expose().as_bytes();
        assert!(!stored.windows(clear.len()).any(|w| w == clear));
        assert_eq!(
            key(b"r").unseal(&server(), "create", &alice, 0, &sealed),
            Some(token.clone())
        );
        let bob = Id::parse("bob").unwrap();
        let other_server = ReplaySeal::new(b"another-secret-another-secret-another");
        for (seal, caller, index) in [
            (&server(), &bob, 0),
            (&server(), &alice, 1),
            (&other_server, &alice, 0),
        ] {
            assert_eq!(
                key(b"r").unseal(seal, "create", caller, index, &sealed),
                None
            );
        }
    }

    #[test]
    fn an_altered_seal_is_refused() {
        let token = InviteToken::generate();
        let alice = Id::parse("alice").unwrap();
        let sealed = key(b"r").seal(&server(), "create", &alice, 0, &token);
        let mut bytes = hex::decode(&sealed).unwrap();
        for at in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[at] ^= 0x20;
            let altered = hex::encode(&bytes);
            assert_eq!(
                key(b"r").unseal(&server(), "create", &alice, 0, &altered),
                None
            );
            bytes[at] ^= 0x20;
        }
        assert_eq!(key(b"r").unseal(&server(), "create", &alice, 0, "00"), None);
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
