//! Reflection, as grpcurl uses it: the services it lists, and every file it
//! fetches to describe them, so that grpcurl needs no `.proto` files.

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use prost::Message as _;
use prost_types::FileDescriptorProto;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::*;

#[tokio::test]
async fn reflection_lists_the_invite_service_and_health() {
    let app = spawn_app(Db::Sqlite).await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };

    let mut responses = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "invites.v1.InviteService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // Older clients (grpcurl before 1.9, Python's grpcio) speak only v1alpha.
    use tonic_reflection::pb::v1alpha;
    let mut old_client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = old_client
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services from v1alpha");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "invites.v1.InviteService")
    );
    app.stop().await;
}

#[tokio::test]
async fn reflection_serves_every_file_the_service_imports_vendored_ones_included() {
    let app = spawn_app(Db::Sqlite).await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);

    // As grpcurl describes the service: the file that holds it, then each of
    // its imports by name, and theirs.
    let mut wanted = vec![MessageRequest::FileContainingSymbol(
        "invites.v1.InviteService".into(),
    )];
    let mut served = BTreeSet::new();
    while let Some(request) = wanted.pop() {
        for raw in files(&mut reflection, request).await {
            let file = FileDescriptorProto::decode(raw.as_slice()).unwrap();
            let unseen = file.dependency.iter().filter(|d| !served.contains(*d));
            wanted.extend(unseen.cloned().map(MessageRequest::FileByFilename));
            served.insert(file.name().to_owned());
        }
    }

    for expected in [
        "invites/v1/invite_service.proto",
        "invites/v1/events.proto",
        "google/api/field_behavior.proto",
        "google/protobuf/descriptor.proto",
    ] {
        assert!(
            served.contains(expected),
            "{expected} missing from {served:?}"
        );
    }
    app.stop().await;
}

/// The encoded files one reflection request answers with.
async fn files(
    reflection: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> Vec<Vec<u8>> {
    let asked = format!("{request:?}");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match responses.next().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(found)) => found.file_descriptor_proto,
        other => panic!("{asked}: expected files, got {other:?}"),
    }
}
