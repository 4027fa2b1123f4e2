//! Requests the server cannot decode (a string that is not UTF-8, nesting past
//! prost's limit) are bad input: INVALID_ARGUMENT with ErrorInfo, never
//! INTERNAL with the decoder's words. Sent as raw bytes, as no prost client
//! would send them.

use crate::helpers::*;
use invite_service::pb;
use prost::{Message as _, bytes::BufMut as _};
use prost_types::{Struct, Value, value::Kind};
use tonic::{
    Code, Status,
    codec::{Codec, EncodeBuf, Encoder},
};

/// Sends bytes as they are, so that a test can send what no prost client
/// would; reads a CreateInviteResponse back.
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
    type Decode = pb::CreateInviteResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::CreateInviteResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        Default::default()
    }
}

/// Calls CreateInvite with `body` as the request message, byte for byte.
async fn create_raw(app: &TestApp, body: Vec<u8>) -> Result<pb::CreateInviteResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.expect("the channel is ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/invites.v1.InviteService/CreateInvite",
    );
    let alice = token("alice", None, false);
    grpc.unary(authed(body, &alice), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// A CreateInviteRequest whose `invite.target_type` is not UTF-8.
fn invalid_utf8_request() -> Vec<u8> {
    let mut request = email_invite("org-1", "bob@example.org");
    request.invite.as_mut().unwrap().target_type = "@@@@@@@@".into();
    let mut bytes = request.encode_to_vec();
    let at = bytes
        .windows(8)
        .position(|w| w == b"@@@@@@@@")
        .expect("the marker is in the encoding");
    bytes[at..at + 8].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28]);
    bytes
}

/// A CreateInviteRequest whose metadata nests `depth` Structs deep: prost
/// refuses to decode past 100 nested messages.
fn deeply_nested_request(depth: usize) -> Vec<u8> {
    let mut metadata = Struct::default();
    for _ in 0..depth {
        let value = Value {
            kind: Some(Kind::StructValue(metadata)),
        };
        metadata = Struct {
            fields: [("n".to_owned(), value)].into(),
        };
    }
    let mut request = email_invite("org-1", "bob@example.org");
    request.invite.as_mut().unwrap().metadata = Some(metadata);
    request.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument_with_error_info() {
    let app = spawn_app(Db::Sqlite).await;

    let mut answers = Vec::new();
    for (what, body) in [
        ("invalid UTF-8", invalid_utf8_request()),
        ("nesting past the limit", deeply_nested_request(101)),
    ] {
        let refused = create_raw(&app, body).await.unwrap_err();
        answers.push((
            what,
            refused.code(),
            reason(&refused),
            refused.message().to_owned(),
        ));
    }

    let codes: Vec<_> = answers
        .iter()
        .map(|(what, code, reason, _)| (*what, *code, reason.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("invalid UTF-8", Code::InvalidArgument, "MALFORMED_REQUEST"),
            (
                "nesting past the limit",
                Code::InvalidArgument,
                "MALFORMED_REQUEST"
            ),
        ],
        "{answers:?}"
    );
    for (what, _, _, message) in &answers {
        // What prost's decoder says: our types' and fields' names.
        for internal in [
            "decode",
            "invalid string value",
            "recursion",
            "Invite.",
            "Struct.",
        ] {
            assert!(!message.contains(internal), "{what}: {message}");
        }
    }
    let fine = create_raw(&app, deeply_nested_request(10))
        .await
        .expect("nesting within the limit decodes");
    assert_eq!(fine.invite.unwrap().target_id, "org-1");
    app.stop().await;
}
