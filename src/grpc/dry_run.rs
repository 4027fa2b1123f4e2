//! The answers of dry runs (`validate_only`, AIP-163): the invites as the
//! real call would create them. What only the write would make is left
//! empty: the id, the etag, the create and update times, and the token, so
//! that no client takes a preview for an invite that exists.

use tonic::Request;

use super::calls::DryRunMark;
use crate::{app::Preview, domain::Invite, pb};

/// Marks the call's log line and its count (`invites_dry_runs_total`): a
/// dry run answers like the real call, and an operator must be able to tell
/// one from the other. Called as the handler starts, so that a dry run the
/// handler refuses counts as one too; one refused before it (a bad token,
/// the call cap, the size limit) is never decoded, so never known as one.
pub fn note<T>(request: &Request<T>) {
    tracing::Span::current().record("validate_only", true);
    if let Some(mark) = request.extensions().get::<DryRunMark>() {
        mark.mark();
    }
}

pub fn create_answer(preview: Preview) -> pb::CreateInviteResponse {
    pb::CreateInviteResponse {
        invite: preview
            .invites
            .first()
            .map(|invite| would_be(invite, preview.requires_passcode)),
        token: String::new(),
    }
}

pub fn batch_answer(preview: Preview) -> pb::BatchCreateInvitesResponse {
    pb::BatchCreateInvitesResponse {
        created: preview
            .invites
            .iter()
            .map(|invite| pb::CreatedInvite {
                invite: Some(would_be(invite, preview.requires_passcode)),
                token: String::new(),
            })
            .collect(),
        invalid: preview.refused.into_iter().map(Into::into).collect(),
    }
}

fn would_be(invite: &Invite, requires_passcode: bool) -> pb::Invite {
    pb::Invite {
        id: String::new(),
        etag: String::new(),
        create_time: None,
        update_time: None,
        requires_passcode,
        ..invite.into()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{
        BatchDraft, DraftInvitee, InviteDraft, InviteStatus, Refusal, Refused,
        fixtures::{now, policy, user},
        plan_batch,
    };

    fn invite() -> Invite {
        let draft = InviteDraft {
            target_type: "organization".into(),
            target_id: "org-1".into(),
            invitee: DraftInvitee::Email("bob@example.org".into()),
            ..Default::default()
        };
        Invite::create(draft, &user("alice"), now(), &policy(), Uuid::now_v7()).unwrap()
    }

    #[test]
    fn a_would_be_invite_shows_what_the_request_decides_and_nothing_only_a_write_makes() {
        let answer = create_answer(Preview {
            invites: vec![invite()],
            refused: Vec::new(),
            requires_passcode: true,
        });

        assert!(answer.token.is_empty());
        let shown = answer.invite.unwrap();
        let real = pb::Invite::from(&invite());
        assert_eq!(
            (shown.id.as_str(), shown.etag.as_str()),
            ("", ""),
            "no id or etag: nothing exists"
        );
        assert_eq!((shown.create_time, shown.update_time), (None, None));
        assert!(shown.requires_passcode);
        assert_eq!(
            shown.status(),
            pb::InviteStatus::from(InviteStatus::Pending)
        );
        assert_eq!(shown.expires_at, real.expires_at);
        assert_eq!(
            (shown.target_id, shown.invitee, shown.role),
            (real.target_id, real.invitee, real.role)
        );
    }

    #[test]
    fn a_batch_preview_lists_tokenless_invites_and_every_refusal() {
        let draft = BatchDraft {
            target_type: "account_group".into(),
            target_id: "grp-1".into(),
            emails: vec!["ann@example.org".into(), "nope".into()],
            ..Default::default()
        };
        let plan = plan_batch(draft, &user("alice"), now(), &policy()).unwrap();

        let answer = batch_answer(Preview {
            invites: plan.invites.into_iter().map(|(_, i)| i).collect(),
            refused: plan.refused,
            requires_passcode: false,
        });

        assert_eq!(answer.created.len(), 1);
        assert!(answer.created[0].token.is_empty());
        assert!(answer.created[0].invite.as_ref().unwrap().id.is_empty());
        let refused = Refused {
            index: 1,
            email: "nope".into(),
            reason: Refusal::InvalidEmail,
        };
        assert_eq!(answer.invalid, [pb::InvalidEmail::from(refused)]);
    }
}
