//! The log line each call leaves, read from the binary's stderr as a log
//! collector would read `--log-format json`.

use std::{process::Stdio, time::Duration};

use invite_service::pb;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines},
    process::{ChildStderr, Command},
};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");

struct JsonLog {
    lines: Lines<BufReader<ChildStderr>>,
    /// Every line read so far, to search for what must never be logged.
    seen: String,
}

impl JsonLog {
    /// The next line that `wanted` accepts; every line must be one JSON object.
    async fn find(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let search = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.seen.push_str(&line);
                self.seen.push('\n');
                let object: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not one JSON object per line ({err}): {line}"));
                if wanted(&object) {
                    return object;
                }
            }
            panic!("the server exited; it logged:\n{}", self.seen);
        };
        tokio::time::timeout(Duration::from_secs(20), search)
            .await
            .expect("the line within 20 s")
    }
}

fn call_line(method: &'static str) -> impl Fn(&Value) -> bool {
    move |line| line["fields"]["message"] == "call" && line["span"]["method"] == method
}

#[tokio::test]
async fn each_call_leaves_one_json_line_with_its_method_code_caller_invite_and_request_id() {
    let url = fresh_database(Db::Sqlite).await;
    let mut child = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("INVITES_JWT_SECRET", SECRET)
        .env("AMQP_URL", amqp_url())
        // No queue is bound to it: every event comes back unrouted.
        .env(
            "INVITES_EXCHANGE",
            format!("invites-test-{}", uuid::Uuid::now_v7().simple()),
        )
        .env("INVITES_LISTEN", "127.0.0.1:0")
        .env("INVITES_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = JsonLog {
        lines: BufReader::new(child.stderr.take().unwrap()).lines(),
        seen: String::new(),
    };
    let started = log.find(|line| line["fields"]["listen"].is_string()).await;
    let listen = started["fields"]["listen"].as_str().unwrap().to_owned();
    log.find(|line| {
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(": SERVING"))
    })
    .await;
    let mut client =
        pb::invite_service_client::InviteServiceClient::connect(format!("http://{listen}"))
            .await
            .unwrap();
    let alice = token("alice", None, false);
    let mut traced = authed(
        pb::CreateInviteRequest {
            notify: true,
            ..email_invite("org-1", "bob@example.org")
        },
        &alice,
    );
    traced
        .metadata_mut()
        .insert("x-request-id", "trace-1234".parse().unwrap());

    let created = client.create_invite(traced).await.unwrap().into_inner();
    let missing = client
        .get_invite(authed(
            pb::GetInviteRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    let create_line = log.find(call_line("CreateInvite")).await;
    let get_line = log.find(call_line("GetInvite")).await;
    // Said once the relay has its confirm, after RabbitMQ returned the body.
    log.find(|line| line["fields"]["routing_key"] == "invite.created")
        .await;

    let invite_id = created.invite.unwrap().id;
    assert_eq!(create_line["level"], "INFO");
    assert_eq!(create_line["fields"]["code"], "OK");
    assert!(create_line["fields"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(create_line["span"]["request_id"], "trace-1234");
    assert_eq!(create_line["span"]["caller"], "alice");
    assert_eq!(create_line["span"]["invite_id"], invite_id.as_str());
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(get_line["level"], "INFO", "a refusal is not a failure");
    assert_eq!(get_line["fields"]["code"], "NOT_FOUND");
    assert_eq!(get_line["fields"]["reason"], "INVITE_NOT_FOUND");
    assert!(get_line["span"]["request_id"].as_str().unwrap().len() >= 32);
    assert!(create_line["span"]["validate_only"].is_null());
    // A dry run answers like the real call; its line says which it was.
    client
        .create_invite(authed(
            pb::CreateInviteRequest {
                validate_only: true,
                ..email_invite("org-1", "cy@example.org")
            },
            &alice,
        ))
        .await
        .unwrap();
    let dry_line = log.find(call_line("CreateInvite")).await;
    assert_eq!(dry_line["fields"]["code"], "OK");
    assert_eq!(dry_line["span"]["validate_only"], true);
    // A body logged with `?` shows its bytes as a list of numbers.
    let token_bytes = format!("{:?}", created.token.as_bytes());
    let token_bytes = &token_bytes[1..token_bytes.len() - 1];
    for secret in [created.token.as_str(), token_bytes, alice.as_str(), SECRET] {
        assert!(
            !log.seen.contains(secret),
            "a secret in the log:\n{}",
            log.seen
        );
    }
    child.kill().await.ok();
}
