//! Shared by the domain's unit tests: a fixed clock, a policy, callers.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{Caller, Email, Id, Policy};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

pub fn policy() -> Policy {
    Policy {
        default_ttl: Duration::days(7),
        max_ttl: Duration::days(90),
    }
}

pub fn user(id: &str) -> Caller {
    Caller {
        user_id: Id::parse(id).unwrap(),
        verified_email: None,
        verified_phone: None,
        is_admin: false,
        grants: Vec::new(),
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
