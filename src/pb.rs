//! The generated `invites.v1` types, and the domain → protobuf conversions that
//! both the gRPC transport and the published events use.

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};

use crate::domain::{self, EventKind, Invitee};

tonic::include_proto!("invites.v1");

/// The encoded descriptors of `proto/`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/invites_descriptor.bin"));

pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// The range both databases store: from the Unix epoch to the end of 9999.
const LATEST_SECONDS: i64 = 253_402_300_799;

/// None for a timestamp before 1970, after 9999, or with invalid nanos.
pub fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    if !(0..=LATEST_SECONDS).contains(&ts.seconds) {
        return None;
    }
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
}

impl From<domain::InviteStatus> for InviteStatus {
    fn from(status: domain::InviteStatus) -> Self {
        match status {
            domain::InviteStatus::Pending => Self::Pending,
            domain::InviteStatus::Accepted => Self::Accepted,
            domain::InviteStatus::Rejected => Self::Rejected,
            domain::InviteStatus::Revoked => Self::Revoked,
            domain::InviteStatus::Expired => Self::Expired,
        }
    }
}

impl From<EventKind> for InviteEventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Created => Self::Created,
            EventKind::Updated => Self::Updated,
            EventKind::Accepted => Self::Accepted,
            EventKind::Rejected => Self::Rejected,
            EventKind::Revoked => Self::Revoked,
            EventKind::Resent => Self::Resent,
            EventKind::Expired => Self::Expired,
            EventKind::Deleted => Self::Deleted,
        }
    }
}

impl From<&domain::Invite> for Invite {
    fn from(invite: &domain::Invite) -> Self {
        let (invitee, allowed_email_domains) = match &invite.invitee {
            Invitee::Email(email) => (
                Some(invite::Invitee::InviteeEmail(email.as_str().into())),
                vec![],
            ),
            Invitee::Phone(phone) => (
                Some(invite::Invitee::InviteePhone(phone.as_str().into())),
                vec![],
            ),
            Invitee::User(id) => (Some(invite::Invitee::InviteeUserId(id.to_string())), vec![]),
            Invitee::OpenLink { allowed_domains } => (
                None,
                allowed_domains
                    .iter()
                    .map(|d| d.as_str().to_owned())
                    .collect(),
            ),
        };
        let text =
            |id: &Option<domain::Id>| id.as_ref().map(ToString::to_string).unwrap_or_default();
        Invite {
            id: invite.id.to_string(),
            target_type: invite.target_type.as_str().into(),
            target_id: invite.target_id.to_string(),
            inviter_id: invite.inviter_id.to_string(),
            invitee,
            allowed_email_domains,
            role: invite.role.as_str().into(),
            status: InviteStatus::from(invite.status).into(),
            starts_at: invite.starts_at.map(timestamp),
            expires_at: Some(timestamp(invite.expires_at)),
            max_uses: Some(invite.max_uses as i32),
            use_count: invite.use_count as i32,
            requires_passcode: invite.passcode_hash.is_some(),
            metadata: invite.metadata.as_ref().and_then(json_to_struct),
            accepted_by: text(&invite.accepted_by),
            accepted_at: invite.accepted_at.map(timestamp),
            rejected_at: invite.rejected_at.map(timestamp),
            revoked_by: text(&invite.revoked_by),
            revoked_at: invite.revoked_at.map(timestamp),
            revoke_reason: invite.revoke_reason.clone().unwrap_or_default(),
            create_time: Some(timestamp(invite.created_at)),
            update_time: Some(timestamp(invite.updated_at)),
            etag: invite.etag(),
        }
    }
}

/// `google.protobuf.Struct` as JSON, the form metadata is stored in.
pub fn struct_to_json(value: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        value
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect(),
    )
}

fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(value_to_json).collect()),
    }
}

/// The stored JSON back as a `Struct`; None unless it is an object.
pub fn json_to_struct(json: &serde_json::Value) -> Option<Struct> {
    match json_to_value(json).kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

fn json_to_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Json::Object(fields) => Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

impl From<domain::Refused> for InvalidEmail {
    fn from(refused: domain::Refused) -> Self {
        Self {
            email: refused.email,
            reason: refused.reason.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_the_round_trip_through_json() {
        let json = serde_json::json!({
            "channel": "lobby", "spawn": {"x": 1.5, "tags": ["a", true, null]}
        });
        let back = struct_to_json(&json_to_struct(&json).unwrap());
        assert_eq!(back, json);
    }

    /// Reflection serves these bytes unchanged: the annotations must be in them.
    #[test]
    fn the_served_descriptors_keep_the_field_behavior_annotations() {
        let pool = prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
        let behavior = pool
            .get_extension_by_name("google.api.field_behavior")
            .unwrap();
        let names = behavior.kind().as_enum().unwrap().clone();
        let behaviors = |message: &str, field: &str| -> Vec<String> {
            let message = pool.get_message_by_name(message).unwrap();
            let options = message.get_field_by_name(field).unwrap().options();
            let prost_reflect::Value::List(values) = options.get_extension(&behavior).into_owned()
            else {
                panic!("field_behavior is a list");
            };
            values
                .iter()
                .map(|v| names.get_value(v.as_enum_number().unwrap()).unwrap())
                .map(|value| value.name().to_owned())
                .collect()
        };

        assert_eq!(behaviors("invites.v1.Invite", "status"), ["OUTPUT_ONLY"]);
        assert_eq!(
            behaviors("invites.v1.Invite", "target_type"),
            ["REQUIRED", "IMMUTABLE"]
        );
        assert_eq!(
            behaviors("invites.v1.UpdateInviteRequest", "update_mask"),
            ["REQUIRED"]
        );
    }

    #[test]
    fn timestamps_keep_their_nanoseconds() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap();
        assert_eq!(from_timestamp(&timestamp(at)), Some(at));
        assert_eq!(
            from_timestamp(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
