//! Per-caller rate limits, per replica: creates (each batch address counts)
//! and calls that present an invite token (accept, reject, get by token),
//! where guessing tokens is the threat. Admins, trusted services, are exempt.
//!
//! Dry runs of creates (`validate_only`) have an allowance of their own, as
//! large as the create one: previewing a list must not spend the allowance
//! that sending it needs, yet the reads a dry run makes (up to 1,000
//! addresses looked up) stay bounded per caller.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
};

use crate::{
    domain::{Caller, InviteError},
    error::{Error, Result},
};

/// Every this many checks, callers whose allowance is full again are
/// forgotten, so the limiter's memory follows the active callers only.
const FORGET_IDLE_EVERY: u64 = 4096;

#[derive(Clone, Default)]
pub struct RateLimits {
    creates: Option<Limiter>,
    dry_runs: Option<Limiter>,
    token_uses: Option<Limiter>,
}

#[derive(Clone)]
struct Limiter {
    buckets: Arc<DefaultKeyedRateLimiter<String>>,
    checks: Arc<AtomicU64>,
}

impl RateLimits {
    /// Allowances per caller per minute; 0 turns a limit off.
    pub fn per_minute(creates: u32, token_uses: u32) -> Self {
        Self {
            creates: Limiter::per_minute(creates),
            dry_runs: Limiter::per_minute(creates),
            token_uses: Limiter::per_minute(token_uses),
        }
    }

    /// Takes `invites` creates from the caller's allowance.
    pub(super) fn take_creates(&self, caller: &Caller, invites: usize) -> Result<()> {
        take_invites(self.creates.as_ref(), caller, invites)
    }

    /// Takes `invites` dry-run creates from the caller's allowance for dry
    /// runs; the create allowance is left whole. Refused as a real create
    /// would be: a batch over a minute's allowance could never pass.
    pub(super) fn take_dry_run(&self, caller: &Caller, invites: usize) -> Result<()> {
        take_invites(self.dry_runs.as_ref(), caller, invites)
    }

    /// Takes one use of an invite token from the caller's allowance.
    pub(super) fn take_token_use(&self, caller: &Caller) -> Result<()> {
        let Some(limiter) = self.token_uses.as_ref().filter(|_| !caller.is_admin) else {
            return Ok(());
        };
        limiter.take(caller, 1).map_err(|refusal| match refusal {
            Refusal::Wait(err) => err,
            Refusal::NeverFits(_) => unreachable!("a limit of at least 1 fits 1"),
        })
    }
}

/// Takes `invites` from `limiter`'s allowance for the caller (admins and an
/// absent limit: nothing to take).
fn take_invites(limiter: Option<&Limiter>, caller: &Caller, invites: usize) -> Result<()> {
    let Some(limiter) = limiter.filter(|_| !caller.is_admin) else {
        return Ok(());
    };
    let wanted = u32::try_from(invites.max(1)).unwrap_or(u32::MAX);
    limiter.take(caller, wanted).map_err(|refusal| match refusal {
        Refusal::Wait(err) => err,
        Refusal::NeverFits(per_minute) => InviteError::invalid(
            "emails",
            format!(
                "lists more addresses than the create rate limit allows in a minute ({per_minute}): split the batch"
            ),
        )
        .into(),
    })
}

enum Refusal {
    /// Over the limit now: retry after the delay in the error.
    Wait(Error),
    /// More than a whole minute's allowance at once.
    NeverFits(u32),
}

impl Limiter {
    fn per_minute(allowance: u32) -> Option<Self> {
        let allowance = NonZeroU32::new(allowance)?;
        Some(Self {
            buckets: Arc::new(RateLimiter::keyed(Quota::per_minute(allowance))),
            checks: Arc::default(),
        })
    }

    fn take(&self, caller: &Caller, wanted: u32) -> Result<(), Refusal> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_IDLE_EVERY == FORGET_IDLE_EVERY - 1
        {
            self.buckets.retain_recent();
        }
        let wanted = NonZeroU32::new(wanted).expect("at least one");
        match self
            .buckets
            .check_key_n(&caller.user_id.to_string(), wanted)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Wait(Error::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })),
            Err(insufficient) => Err(Refusal::NeverFits(insufficient.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{admin, user};

    #[test]
    fn a_caller_over_the_limit_is_told_when_to_retry_and_others_are_not_held_back() {
        let limits = RateLimits::per_minute(3, 2);
        limits.take_creates(&user("alice"), 3).unwrap();
        let Err(Error::RateLimited { retry_after }) = limits.take_creates(&user("alice"), 1) else {
            panic!("alice is over her limit");
        };
        assert!(
            retry_after.as_secs() <= 20,
            "one create comes back every 20 s"
        );
        limits.take_creates(&user("bob"), 1).unwrap();
        limits.take_token_use(&user("alice")).unwrap();
    }

    #[test]
    fn a_batch_larger_than_a_minutes_allowance_is_refused_as_invalid() {
        let limits = RateLimits::per_minute(10, 0);
        let result = limits.take_creates(&user("alice"), 11);
        assert!(matches!(result, Err(Error::Rule(InviteError::Invalid(_)))));
    }

    #[test]
    fn dry_runs_spend_an_allowance_of_their_own_and_are_refused_alike() {
        let limits = RateLimits::per_minute(3, 0);
        limits.take_dry_run(&user("alice"), 3).unwrap();
        limits
            .take_creates(&user("alice"), 3)
            .expect("a preview leaves the create allowance whole");
        let over = limits.take_dry_run(&user("alice"), 1);
        assert!(matches!(over, Err(Error::RateLimited { .. })));
        let too_big = limits.take_dry_run(&user("bob"), 4);
        assert!(matches!(too_big, Err(Error::Rule(InviteError::Invalid(_)))));
    }

    #[test]
    fn admins_and_zero_limits_are_never_limited() {
        let limits = RateLimits::per_minute(1, 0);
        for _ in 0..10 {
            limits.take_creates(&admin(), 1000).unwrap();
            limits.take_token_use(&user("alice")).unwrap();
        }
    }
}
