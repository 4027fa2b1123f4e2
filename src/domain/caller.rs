use super::{
    Grant,
    values::{Email, Id, Phone},
};

/// Who is calling, as the verified bearer token says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Id,
    /// Only a verified email identifies an invitee.
    pub verified_email: Option<Email>,
    /// Only a verified phone number identifies an invitee.
    pub verified_phone: Option<Phone>,
    /// Scope `invites:admin`: a trusted internal service.
    pub is_admin: bool,
    /// What the caller may invite to (under the `grants` create policy).
    pub grants: Vec<Grant>,
}

impl Caller {
    pub const ADMIN_SCOPE: &'static str = "invites:admin";

    /// The invitee keys (see [`super::Invitee::key`]) under which invites
    /// addressed to this caller are stored.
    pub fn invitee_keys(&self) -> Vec<String> {
        let mut keys = vec![
            super::Invitee::User(self.user_id.clone())
                .key()
                .unwrap_or_default(),
        ];
        if let Some(email) = &self.verified_email {
            keys.extend(super::Invitee::Email(email.clone()).key());
        }
        if let Some(phone) = &self.verified_phone {
            keys.extend(super::Invitee::Phone(phone.clone()).key());
        }
        keys
    }
}
