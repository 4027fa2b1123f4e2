//! Bad input at scale: generated values in every field of the requests, and
//! raw garbage or truncated protobuf on the wire. Every answer is a gRPC
//! status the caller can act on: never INTERNAL or UNKNOWN, never a hang,
//! never a dropped connection, and health answers afterwards.

use std::time::Duration;

use invite_service::pb;
use proptest::{
    collection::{btree_map, vec},
    prelude::*,
    test_runner::{Config, TestRunner},
};
use prost::{Message as _, bytes::BufMut as _};
use tokio::runtime::Runtime;
use tonic::{
    Code, Status,
    codec::{Codec, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

const CASES: u32 = 200;
const METHODS: [&str; 13] = [
    "CreateInvite",
    "GetInvite",
    "ListInvites",
    "AcceptInvite",
    "RejectInvite",
    "RevokeInvite",
    "DeleteInvite",
    "BatchCreateInvites",
    "GetInviteByToken",
    "UpdateInvite",
    "ResendInvite",
    "ListInviteEvents",
    "WatchInvites",
];

/// Sends bytes as they are; reads any answer as an empty message.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<()>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        Default::default()
    }
}

/// One call; for WatchInvites, until the stream opens and shows no error
/// within a moment (a valid request: the watch is then dropped).
async fn raw(channel: &Channel, method: &str, body: Vec<u8>, caller: &str) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = format!("/invites.v1.InviteService/{method}")
        .parse()
        .unwrap();
    let request = authed(body, caller);
    if method == "WatchInvites" {
        let mut stream = grpc
            .server_streaming(request, path, RawCodec)
            .await?
            .into_inner();
        // A status that ends the stream at once is checked too; a watch
        // waiting for events after a moment is a healthy one.
        match tokio::time::timeout(Duration::from_millis(100), stream.message()).await {
            Ok(Err(status)) => Err(status),
            _ => Ok(()),
        }
    } else {
        grpc.unary(request, path, RawCodec).await.map(drop)
    }
}

/// The property: an answer came within the bound, and if it is an error, it
/// is one the caller can act on.
fn acceptable(
    answer: Result<Result<(), Status>, tokio::time::error::Elapsed>,
) -> Result<(), TestCaseError> {
    let answer = answer.map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
    if let Err(status) = answer {
        prop_assert!(
            !matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::Unavailable
            ),
            "{status:?}"
        );
    }
    Ok(())
}

struct Fuzzed {
    runtime: Runtime,
    app: TestApp,
    channel: Channel,
    alice: String,
    /// Watches as an admin, who may watch anything: a valid request then
    /// opens a stream rather than being refused before its fields are read.
    admin: String,
}

impl Fuzzed {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(spawn_app(Db::Sqlite));
        // One connection for every case: a case that broke it fails the next.
        let channel = runtime.block_on(app.channel());
        Self {
            runtime,
            app,
            channel,
            alice: token("alice", None, false),
            admin: token("root", None, true),
        }
    }

    fn call(&self, method: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
        let caller = if method == "WatchInvites" {
            &self.admin
        } else {
            &self.alice
        };
        let call = raw(&self.channel, method, body, caller);
        acceptable(
            self.runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), call).await }),
        )
    }

    fn end(self) {
        let Self { runtime, app, .. } = self;
        runtime.block_on(async {
            assert_eq!(app.health().await, ServingStatus::Serving, "health answers");
            app.stop().await;
        });
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn raw_garbage_to_every_method_is_answered_with_a_status() {
    let fuzzed = Fuzzed::start();
    let garbage = (0..METHODS.len(), vec(any::<u8>(), 0..600));

    runner()
        .run(&garbage, |(method, body)| {
            fuzzed.call(METHODS[method], body)
        })
        .unwrap();

    fuzzed.end();
}

#[test]
fn truncated_requests_are_answered_with_a_status() {
    let fuzzed = Fuzzed::start();
    let request = pb::CreateInviteRequest {
        passcode: "castle-42".into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        ..email_invite("org-1", "bob@example.org")
    }
    .encode_to_vec();
    let cuts = 0..request.len();

    runner()
        .run(&cuts, |cut| {
            fuzzed.call("CreateInvite", request[..cut].to_vec())
        })
        .unwrap();

    fuzzed.end();
}

/// Any text, including control characters, other scripts and the empty string.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9._@:-]{1,40}",
        any::<String>(),
        ".{200,400}",
    ]
}

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    proptest::option::of(
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
}

fn metadata() -> impl Strategy<Value = Option<prost_types::Struct>> {
    proptest::option::of(btree_map(text(), text(), 0..6).prop_map(|fields| {
        prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    let value = prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v)),
                    };
                    (k, value)
                })
                .collect(),
        }
    }))
}

fn invite() -> impl Strategy<Value = pb::Invite> {
    (
        (text(), text(), text(), text()),
        (timestamp(), timestamp(), proptest::option::of(any::<i32>())),
        (vec(text(), 0..4), metadata()),
    )
        .prop_map(
            |(
                (target_type, target_id, email, role),
                (starts_at, expires_at, max_uses),
                (domains, metadata),
            )| {
                pb::Invite {
                    target_type,
                    target_id,
                    invitee: (!email.is_empty())
                        .then_some(pb::invite::Invitee::InviteeEmail(email)),
                    role,
                    starts_at,
                    expires_at,
                    max_uses,
                    allowed_email_domains: domains,
                    metadata,
                    ..Default::default()
                }
            },
        )
}

#[test]
fn generated_requests_of_every_kind_are_answered_with_a_status() {
    let fuzzed = Fuzzed::start();
    let requests = prop_oneof![
        (invite(), text(), text(), any::<bool>()).prop_map(
            |(invite, passcode, request_id, validate_only)| {
                (
                    "CreateInvite",
                    pb::CreateInviteRequest {
                        invite: Some(invite),
                        passcode,
                        request_id,
                        notify: true,
                        validate_only,
                    }
                    .encode_to_vec(),
                )
            }
        ),
        (text(), text(), any::<i32>(), text(), text()).prop_map(
            |(target_id, status, page_size, page_token, email)| {
                (
                    "ListInvites",
                    pb::ListInvitesRequest {
                        target_type: "organization".into(),
                        target_id,
                        page_size,
                        page_token,
                        invitee_email: email,
                        status: status.len() as i32 % 8,
                        ..Default::default()
                    }
                    .encode_to_vec(),
                )
            }
        ),
        (text(), text()).prop_map(|(token, passcode)| {
            (
                "AcceptInvite",
                pb::AcceptInviteRequest {
                    invite_ref: Some(pb::accept_invite_request::InviteRef::Token(token)),
                    passcode,
                }
                .encode_to_vec(),
            )
        }),
        (text(), vec(text(), 0..20), text(), timestamp()).prop_map(
            |(target_id, emails, role, expires_at)| {
                (
                    "BatchCreateInvites",
                    pb::BatchCreateInvitesRequest {
                        target_type: "organization".into(),
                        target_id,
                        emails,
                        role,
                        expires_at,
                        ..Default::default()
                    }
                    .encode_to_vec(),
                )
            }
        ),
        (text(), text(), invite(), vec(text(), 0..4)).prop_map(|(id, etag, invite, paths)| {
            (
                "UpdateInvite",
                pb::UpdateInviteRequest {
                    invite: Some(pb::Invite { id, etag, ..invite }),
                    update_mask: Some(prost_types::FieldMask { paths }),
                }
                .encode_to_vec(),
            )
        }),
        (text(), any::<i32>(), text()).prop_map(|(invite_id, page_size, page_token)| {
            (
                "ListInviteEvents",
                pb::ListInviteEventsRequest {
                    invite_id,
                    page_size,
                    page_token,
                }
                .encode_to_vec(),
            )
        }),
        (text(), text(), vec(any::<i32>(), 0..4), text()).prop_map(
            |(target_type, target_id, event_types, cursor)| {
                (
                    "WatchInvites",
                    pb::WatchInvitesRequest {
                        target_type,
                        target_id,
                        event_types,
                        cursor,
                    }
                    .encode_to_vec(),
                )
            }
        ),
        (text(), any::<i64>(), any::<i32>()).prop_map(|(id, seconds, nanos)| {
            (
                "ResendInvite",
                pb::ResendInviteRequest {
                    id,
                    notify: true,
                    ttl: Some(prost_types::Duration { seconds, nanos }),
                }
                .encode_to_vec(),
            )
        }),
    ];

    runner()
        .run(&requests, |(method, body)| fuzzed.call(method, body))
        .unwrap();

    fuzzed.end();
}
