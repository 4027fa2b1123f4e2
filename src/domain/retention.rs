//! Retention (`--retention`): which invites are finished, and when a
//! finished invite and its history have been kept long enough to be removed.

use chrono::{DateTime, Duration, Utc};

use super::{Invite, InviteStatus};

/// How long a finished invite, and the history of a deleted one, are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(Duration);

impl Retention {
    /// None for a zero or unrepresentable length: a retention of nothing
    /// would remove an invite in the instant it finishes.
    pub fn new(keep: std::time::Duration) -> Option<Self> {
        Duration::from_std(keep)
            .ok()
            .filter(|keep| *keep > Duration::zero())
            .map(Self)
    }

    /// The instant before which something must have happened to be removed
    /// at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.0
    }

    /// Whether what happened at `since` has been kept longer than this.
    pub fn is_over(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        since < self.cutoff(now)
    }
}

impl InviteStatus {
    /// A state no accept, reject, revoke or update leaves. EXPIRED counts:
    /// a resend can revive it only until the retention removes it.
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Pending => false,
            Self::Accepted | Self::Rejected | Self::Revoked | Self::Expired => true,
        }
    }
}

impl Invite {
    /// Finished longer ago than the retention. An invite's last change is
    /// the one that finished it (nothing changes a finished invite, and a
    /// resend makes an expired one pending again), so its time is when.
    pub fn is_past_retention(&self, retention: &Retention, now: DateTime<Utc>) -> bool {
        self.status.is_terminal() && retention.is_over(self.updated_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        DraftInvitee, InviteDraft,
        fixtures::{now, policy, user},
    };

    fn days(n: u64) -> Retention {
        Retention::new(std::time::Duration::from_secs(n * 86_400)).unwrap()
    }

    /// An invite of alice's in `status`, last changed `ago` before now.
    fn invite(status: InviteStatus, ago: Duration) -> Invite {
        let draft = InviteDraft {
            target_type: "organization".into(),
            target_id: "org-1".into(),
            invitee: DraftInvitee::Email("bob@example.org".into()),
            ..Default::default()
        };
        let changed = now() - ago;
        let mut invite = Invite::create(
            draft,
            &user("alice"),
            changed,
            &policy(),
            uuid::Uuid::now_v7(),
        )
        .unwrap();
        invite.status = status;
        invite
    }

    #[test]
    fn only_pending_is_not_terminal() {
        let terminal: Vec<_> = InviteStatus::ALL
            .into_iter()
            .filter(|status| status.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                InviteStatus::Accepted,
                InviteStatus::Rejected,
                InviteStatus::Revoked,
                InviteStatus::Expired,
            ]
        );
    }

    #[test]
    fn a_retention_of_nothing_is_refused() {
        assert_eq!(Retention::new(std::time::Duration::ZERO), None);
        assert_eq!(Retention::new(std::time::Duration::MAX), None);
        assert!(Retention::new(std::time::Duration::from_secs(1)).is_some());
    }

    #[test]
    fn a_finished_invite_is_past_retention_only_once_it_is_longer() {
        let retention = days(30);
        let exactly = Duration::days(30);
        let longer = exactly + Duration::microseconds(1);
        for status in InviteStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(!invite(status, exactly).is_past_retention(&retention, now()));
            assert!(invite(status, longer).is_past_retention(&retention, now()));
        }
    }

    #[test]
    fn a_pending_invite_is_never_past_retention_however_old() {
        let ancient = invite(InviteStatus::Pending, Duration::days(3650));

        assert!(!ancient.is_past_retention(&days(1), now()));
    }

    #[test]
    fn the_cutoff_is_the_retention_before_now() {
        assert_eq!(days(400).cutoff(now()), now() - Duration::days(400));
        assert!(days(1).is_over(now() - Duration::days(2), now()));
        assert!(!days(1).is_over(now() - Duration::hours(23), now()));
    }
}
