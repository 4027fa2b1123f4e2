//! Shared by the domain's unit tests: a fixed clock, a policy, callers.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{Caller, CreatePolicy, Email, Grant, Id, Policy};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

pub fn policy() -> Policy {
    Policy {
        default_ttl: Duration::days(7),
        max_ttl: Duration::days(90),
        create: CreatePolicy::Grants,
    }
}

/// The target types the unit tests invite to, any id and role.
pub const TEST_GRANTS: [&str; 2] = ["organization/*", "account_group/*"];

/// A user granted [`TEST_GRANTS`].
pub fn user(id: &str) -> Caller {
    Caller {
        user_id: Id::parse(id).unwrap(),
        verified_email: None,
        verified_phone: None,
        is_admin: false,
        grants: TEST_GRANTS.iter().map(|g| g.parse().unwrap()).collect(),
    }
}

pub fn with_email(id: &str, email: &str) -> Caller {
    Caller {
        verified_email: Some(Email::parse(email).unwrap()),
        ..user(id)
    }
}

pub fn admin() -> Caller {
    Caller {
        is_admin: true,
        ..user("svc-admin")
    }
}

/// A user whose token grants exactly these (`TYPE/ID[=ROLE,ROLE]`).
pub fn granted(id: &str, grants: &[&str]) -> Caller {
    Caller {
        grants: grants.iter().map(|g| g.parse::<Grant>().unwrap()).collect(),
        ..user(id)
    }
}
