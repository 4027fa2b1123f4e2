//! The service as a real process, as an operator starts it: to kill it with
//! SIGKILL, or to run several replicas.

use std::{process::Stdio, time::Duration};

use invite_service::pb::invite_service_client::InviteServiceClient;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    sync::oneshot,
};
use tonic::transport::Channel;

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");

pub struct Replica {
    pub name: String,
    pub child: Child,
    pub client: InviteServiceClient<Channel>,
}

/// Starts `invite-service` with its own `application_name`, so that the
/// database tells which replica holds the relay's lock.
pub async fn start_replica(name: &str, database_url: &str, exchange: &str) -> Replica {
    let mut child = Command::new(BIN)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("{database_url}?application_name={name}"),
        )
        .env("AMQP_URL", amqp_url())
        .env("INVITES_EXCHANGE", exchange)
        .env("INVITES_JWT_SECRET", SECRET)
        .env("INVITES_LISTEN", "127.0.0.1:0")
        .env("INVITES_LOG_FORMAT", "json")
        // Load from one inviter and one invitee: no rate limit in the way.
        .env("INVITES_CREATE_RATE_LIMIT", "0")
        .env("INVITES_TOKEN_RATE_LIMIT", "0")
        .env("RUST_LOG", "info,invite_service::grpc::calls=warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (listening, listen) = oneshot::channel();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Read to the end, or a full pipe would stall the replica.
    tokio::spawn(async move {
        let mut listening = Some(listening);
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(object) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(address) = object["fields"]["listen"].as_str()
                && let Some(listening) = listening.take()
            {
                let _ = listening.send(address.to_owned());
            }
        }
    });
    let address = tokio::time::timeout(Duration::from_secs(30), listen)
        .await
        .expect("the replica listens within 30 s")
        .expect("the replica started");
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    wait_until_serving(channel.clone()).await;
    let client = InviteServiceClient::new(channel);
    Replica {
        name: name.to_owned(),
        child,
        client,
    }
}

pub async fn wait_until_serving(channel: Channel) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut health = HealthClient::new(channel);
    for _ in 0..300 {
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .map(|answer| answer.into_inner().status());
        if matches!(status, Ok(ServingStatus::Serving)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not become SERVING within 30 s");
}
