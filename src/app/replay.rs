//! Idempotent answers of the create calls: what is stored of the first
//! answer, and the replay of it that a retry with the same key gets.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Created, Invites, answer_size, idempotency::IdempotencyKey};
use crate::{
    domain::{Caller, Invite, InviteError, InviteToken, Refusal, Refused},
    error::{Error, Result},
    store::{self, StoredAnswer},
};

impl Invites {
    /// The first answer to this key, if there was one. The invites are shown
    /// as they are now; a refused address is read from `emails`, the
    /// request's, which are those of the first request (same fingerprint).
    pub(super) async fn replay(
        &self,
        rpc: &str,
        caller: &Caller,
        key: Option<&IdempotencyKey>,
        emails: &[String],
    ) -> Result<Option<Created>> {
        let Some(key) = key else { return Ok(None) };
        let conn = self.store.conn()?;
        let Some(answer) = store::find_answer(conn, &key.storage_key(rpc, &caller.user_id)).await?
        else {
            return Ok(None);
        };
        if answer.request_hash != key.fingerprint() {
            return Err(InviteError::invalid(
                "request_id",
                "was already used for a different request: use a new request_id",
            )
            .into());
        }
        let corrupt =
            |what: &str| Error::Internal(anyhow::anyhow!("stored idempotent answer: bad {what}"));
        let ids: Vec<Uuid> =
            serde_json::from_value(answer.invite_ids).map_err(|_| corrupt("ids"))?;
        let sealed: Vec<String> =
            serde_json::from_value(answer.sealed_tokens).map_err(|_| corrupt("tokens"))?;
        let refused: Vec<StoredRefusal> =
            serde_json::from_value(answer.refused).map_err(|_| corrupt("refusals"))?;
        let mut invites = Vec::with_capacity(ids.len());
        for (index, (id, sealed)) in ids.into_iter().zip(sealed).enumerate() {
            let token = key
                .unseal(&self.seal, rpc, &caller.user_id, index, &sealed)
                .ok_or_else(|| {
                    // Sealed under another secret (the seal secret, or the
                    // JWT secret it derives from, changed since): the caller
                    // can act on that, unlike on INTERNAL.
                    InviteError::invalid(
                        "request_id",
                        "names an answer this server can no longer open (its replay seal \
                         secret changed since): send a new request_id",
                    )
                })?;
            // Deleted since: there is nothing left to return for it.
            if let Some(invite) = store::find_invite(conn, id).await? {
                invites.push((invite, token));
            }
        }
        let refused = refused
            .into_iter()
            .map(|stored| {
                let (index, reason) = stored.placed();
                let reason = Refusal::parse(reason).ok_or_else(|| corrupt("refusal reason"))?;
                let email = emails.get(index).ok_or_else(|| corrupt("refusal index"))?;
                Ok(Refused {
                    index,
                    email: email.clone(),
                    reason,
                })
            })
            .collect::<Result<_>>()?;
        answer_size::ensure_replay_fits(&invites)?;
        // A replay writes nothing, but it reads every invite of the answer:
        // it is charged like one create.
        self.limits.take_creates(caller, 1)?;
        Ok(Some(Created { invites, refused }))
    }
}

impl Invites {
    /// What is kept of a first answer: the invites' ids, their tokens sealed,
    /// and each refusal's place and reason.
    pub(super) fn stored_answer(
        &self,
        rpc: &str,
        caller: &Caller,
        key: &IdempotencyKey,
        created: &[(Invite, InviteToken)],
        refused: &[Refused],
        now: DateTime<Utc>,
    ) -> StoredAnswer {
        let ids: Vec<Uuid> = created.iter().map(|(invite, _)| invite.id).collect();
        let sealed: Vec<String> = created
            .iter()
            .enumerate()
            .map(|(index, (_, token))| key.seal(&self.seal, rpc, &caller.user_id, index, token))
            .collect();
        let refused: Vec<(usize, &str)> = refused
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        StoredAnswer {
            key_hash: key.storage_key(rpc, &caller.user_id),
            request_hash: key.fingerprint().to_owned(),
            invite_ids: serde_json::json!(ids),
            sealed_tokens: serde_json::json!(sealed),
            refused: serde_json::json!(refused),
            created_at: now,
        }
    }
}

/// A refusal in a stored answer: its place in the request and its reason.
/// The address is not stored: it may hold a NUL, which PostgreSQL's jsonb
/// refuses, and a replay has it in its request. Answers stored before this
/// held the address too; it is ignored.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredRefusal {
    Placed(usize, String),
    WithAddress(usize, serde::de::IgnoredAny, String),
}

impl StoredRefusal {
    fn placed(&self) -> (usize, &str) {
        match self {
            Self::Placed(index, reason) | Self::WithAddress(index, _, reason) => (*index, reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_refusals_are_read_with_or_without_their_address() {
        let stored: Vec<StoredRefusal> = serde_json::from_value(serde_json::json!([
            [1, "INVALID_EMAIL"],
            [2, "ann@example.org", "ALREADY_INVITED"]
        ]))
        .unwrap();
        let placed: Vec<_> = stored.iter().map(StoredRefusal::placed).collect();
        assert_eq!(placed, [(1, "INVALID_EMAIL"), (2, "ALREADY_INVITED")]);
    }
}
