//! Tokens and keys: JWT time checks, claim shapes, keys from a JWKS URL,
//! secrets from files and out of Debug, the sealed replay token.

use std::{
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use clap::Parser as _;
use invite_service::{config::Cli, pb};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpListener,
    task::JoinHandle,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;
use crate::on_both_databases;

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");
const RS256_PRIVATE: &[u8] = include_bytes!("../fixtures/rs256-private.pem");
const RS256_PUBLIC: &[u8] = include_bytes!("../fixtures/rs256-public.pem");
const ES256_PRIVATE: &[u8] = include_bytes!("../fixtures/es256-private.pem");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims for `sub`, valid for an hour.
fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 3600 })
}

/// An HS256 token with exactly these claims, signed with the test secret.
fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn private_key(algorithm: Algorithm) -> EncodingKey {
    match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RS256_PRIVATE).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(ES256_PRIVATE).unwrap(),
        other => panic!("no fixture key for {other:?}"),
    }
}

/// A token signed with a fixture key, its header naming `kid`.
fn signed(algorithm: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &private_key(algorithm)).unwrap()
}

/// The public half of a fixture key as a JWK, with `kid` and `alg`.
fn jwk(algorithm: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&private_key(algorithm), algorithm).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

/// Whether the server takes this bearer token: an authenticated caller
/// asking for an invite that does not exist gets NOT_FOUND.
async fn probe(app: &TestApp, jwt: &str) -> Result<(), tonic::Status> {
    let mut client = app.client().await;
    let request = pb::GetInviteRequest {
        id: uuid::Uuid::now_v7().to_string(),
    };
    match client.get_invite(authed(request, jwt)).await {
        Err(status) if status.code() == Code::NotFound => Ok(()),
        Err(status) => Err(status),
        Ok(_) => panic!("a random invite id was found"),
    }
}

async fn assert_refused(app: &TestApp, jwt: &str, code: Code, why: &str) {
    let status = probe(app, jwt).await.expect_err("the token was accepted");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), why, "{status:?}");
}

// JWT time checks and claim shapes.

#[tokio::test]
async fn a_token_used_before_its_nbf_is_refused() {
    let app = spawn_app(Db::Sqlite).await;
    let early = json!({ "sub": "alice", "exp": now() + 7200, "nbf": now() + 3600 });

    assert_refused(
        &app,
        &hs256(&early),
        Code::Unauthenticated,
        "TOKEN_NOT_YET_VALID",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_clock_skew_leeway_is_sixty_seconds_unless_configured() {
    let expired_30s_ago = hs256(&json!({ "sub": "alice", "exp": now() - 30 }));
    let valid_in_30s = hs256(&json!({ "sub": "alice", "exp": now() + 3600, "nbf": now() + 30 }));
    let lenient = spawn_app(Db::Sqlite).await;
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec!["--jwt-leeway".into(), "5s".into()];
    let strict = TestApp::start(options).await;

    probe(&lenient, &expired_30s_ago).await.unwrap();
    probe(&lenient, &valid_in_30s).await.unwrap();
    assert_refused(
        &strict,
        &expired_30s_ago,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    )
    .await;
    assert_refused(
        &strict,
        &valid_in_30s,
        Code::Unauthenticated,
        "TOKEN_NOT_YET_VALID",
    )
    .await;
    lenient.stop().await;
    strict.stop().await;
}

#[tokio::test]
async fn email_verified_may_be_the_string_true_or_false() {
    let mut scene = alice_invites_bob(Db::Sqlite).await;
    let bob = |verified: Value| {
        let mut claims = claims("bob");
        claims["email"] = json!("bob@example.org");
        claims["email_verified"] = verified;
        hs256(&claims)
    };

    let unverified = scene
        .client
        .accept_invite(authed(accept_by_token(&scene.link), &bob(json!("false"))))
        .await
        .unwrap_err();
    let accepted = scene
        .client
        .accept_invite(authed(accept_by_token(&scene.link), &bob(json!("true"))))
        .await
        .expect("a verified email given as a string identifies the invitee");

    assert_eq!(unverified.code(), Code::PermissionDenied);
    assert_eq!(reason(&unverified), "INVITEE_MISMATCH");
    assert_eq!(
        accepted.into_inner().status(),
        pb::InviteStatus::Accepted,
        "accepted"
    );
    scene.end().await;
}

// Keys from files and PEMs.

#[tokio::test]
async fn a_public_key_on_an_unsupported_curve_stops_start_up_naming_the_flag() {
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec![
        "--jwt-public-key".into(),
        fixture("es384-public.pem"),
        "--jwt-audience".into(),
        "invites".into(),
    ];

    let built =
        invite_service::startup::Application::build(settings_without_secret(&options)).await;

    let err = format!("{:#}", built.err().expect("start-up refused"));
    assert!(err.contains("--jwt-public-key"), "{err}");
    assert!(err.contains("P-256"), "{err}");
}

/// The binary with a clean environment on a SQLite file of its own.
async fn command(db: Db) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_clear()
        .env("DATABASE_URL", fresh_database(db).await)
        .env("AMQP_URL", amqp_url())
        .env("INVITES_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_public_key_without_an_audience_logs_a_warning_at_start_up() {
    let mut child = command(Db::Sqlite)
        .await
        .env("INVITES_JWT_PUBLIC_KEY", fixture("rs256-public.pem"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    let mut before_serving = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("SERVING") && !line.contains("NOT_SERVING") {
                return;
            }
            before_serving.push(line);
        }
        panic!("the server exited before serving: {before_serving:#?}");
    })
    .await
    .expect("SERVING within 30 s");

    assert!(
        before_serving
            .iter()
            .any(|line| line.contains("WARN") && line.contains("--jwt-audience")),
        "{before_serving:#?}"
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn the_jwt_secret_may_come_from_a_file_with_a_trailing_newline() {
    let dir = std::env::temp_dir().join(format!("invites_test_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwt-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();

    let output = command(Db::Postgres)
        .await
        .env("INVITES_JWT_SECRET_FILE", &file)
        .args(["token", "--sub", "alice"])
        .output()
        .await
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let jwt = String::from_utf8(output.stdout).unwrap();
    let app = spawn_app(Db::Sqlite).await;
    probe(&app, jwt.trim_end())
        .await
        .expect("signed with the file's secret, newline left out");
    app.stop().await;
}

#[test]
fn debug_output_shows_no_secret_and_no_password() {
    let cli = Cli::try_parse_from([
        "invite-service",
        "--jwt-secret",
        SECRET,
        "--database-url",
        "postgres://app:hunter2-db@db.internal/invites",
        "--amqp-url",
        "amqp://app:hunter2-mq@mq.internal:5672/%2f",
    ])
    .unwrap();

    let debug = format!("{cli:?}");

    for secret in [SECRET, "hunter2-db", "hunter2-mq"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("db.internal"), "hosts stay visible: {debug}");
}

// Keys from a JWKS URL, served by a tiny HTTP server of the test's own.

/// Serves a JWKS at a fixed port; can be taken down and brought back, and
/// counts the fetches.
struct JwksServer {
    port: u16,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    serving: Option<JoinHandle<()>>,
}

impl JwksServer {
    async fn up(keys: Value) -> Self {
        let mut server = Self::down(keys).await;
        server.restore().await;
        server
    }

    /// Nothing listens yet: connections to the port are refused.
    async fn down(keys: Value) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            keys: Arc::new(Mutex::new(json!({ "keys": keys }))),
            fetches: Arc::default(),
            serving: None,
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let (keys, fetches) = (self.keys.clone(), self.fetches.clone());
        self.serving = Some(tokio::spawn(serve_jwks(listener, keys, fetches)));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/.well-known/jwks.json", self.port)
    }

    fn publish(&self, keys: Value) {
        *self.keys.lock().unwrap() = json!({ "keys": keys });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

/// Answers every request with the current JWKS and closes the connection.
async fn serve_jwks(listener: TcpListener, keys: Arc<Mutex<Value>>, fetches: Arc<AtomicUsize>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let (keys, fetches) = (keys.clone(), fetches.clone());
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16_384 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            fetches.fetch_add(1, Ordering::SeqCst);
            let body = keys.lock().unwrap().to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// A server verifying tokens with the keys at `jwks`'s URL.
async fn jwks_app(jwks: &JwksServer) -> (TestApp, Options) {
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec![
        "--jwt-jwks-url".into(),
        jwks.url(),
        "--jwt-audience".into(),
        "invites".into(),
    ];
    let app = TestApp::start_unready_with(&options, settings_without_secret(&options)).await;
    (app, options)
}

fn audience_claims(sub: &str) -> Value {
    let mut claims = claims(sub);
    claims["aud"] = json!("invites");
    claims
}

#[tokio::test]
async fn tokens_are_verified_with_the_jwks_key_their_kid_names() {
    let jwks = JwksServer::up(json!([
        jwk(Algorithm::RS256, "rsa-1"),
        jwk(Algorithm::ES256, "ec-1")
    ]))
    .await;
    let (app, _) = jwks_app(&jwks).await;
    app.wait_until_serving_within(Duration::from_secs(30)).await;
    let claims = audience_claims("svc-billing");

    probe(&app, &signed(Algorithm::RS256, "rsa-1", &claims))
        .await
        .expect("RS256 by kid");
    probe(&app, &signed(Algorithm::ES256, "ec-1", &claims))
        .await
        .expect("ES256 by kid");
    // A kid naming the other key: the signature cannot match.
    assert_refused(
        &app,
        &signed(Algorithm::RS256, "ec-1", &claims),
        Code::Unauthenticated,
        "INVALID_TOKEN",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn algorithm_confusion_and_unsigned_tokens_are_refused() {
    let mut mislabelled = jwk(Algorithm::RS256, "rsa-as-ec");
    mislabelled["alg"] = json!("ES256");
    let jwks = JwksServer::up(json!([jwk(Algorithm::RS256, "rsa-1"), mislabelled])).await;
    let (app, _) = jwks_app(&jwks).await;
    app.wait_until_serving_within(Duration::from_secs(30)).await;
    let claims = audience_claims("mallory");
    // HS256 "signed" with the public key, which anyone can read.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let hs256_with_public_key =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(RS256_PUBLIC)).unwrap();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );

    for (what, jwt) in [
        ("HS256 with the public key", hs256_with_public_key),
        ("alg none", unsigned),
        (
            "a key whose alg says ES256",
            signed(Algorithm::RS256, "rsa-as-ec", &claims),
        ),
    ] {
        let status = probe(&app, &jwt).await.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    probe(&app, &signed(Algorithm::RS256, "rsa-1", &claims))
        .await
        .expect("the honest token still works");
    app.stop().await;
}

#[tokio::test]
async fn a_key_added_to_the_jwks_is_accepted_after_a_refresh_and_unknown_kids_are_refused() {
    let jwks = JwksServer::up(json!([jwk(Algorithm::RS256, "rsa-1")])).await;
    let (app, _) = jwks_app(&jwks).await;
    app.wait_until_serving_within(Duration::from_secs(30)).await;
    let rotated = signed(Algorithm::ES256, "ec-2", &audience_claims("alice"));

    let unknown = probe(&app, &rotated).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(reason(&unknown), "UNKNOWN_SIGNING_KEY");
    assert!(unknown.message().contains("ec-2"), "{}", unknown.message());

    jwks.publish(json!([
        jwk(Algorithm::RS256, "rsa-1"),
        jwk(Algorithm::ES256, "ec-2")
    ]));
    // Within the contract's 60 s: an unknown kid refreshes at most every 10 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(75);
    while let Err(status) = probe(&app, &rotated).await {
        assert_eq!(reason(&status), "UNKNOWN_SIGNING_KEY", "{status:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new key was not taken up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_storm_of_unknown_kids_does_not_storm_the_jwks_url() {
    let jwks = JwksServer::up(json!([jwk(Algorithm::RS256, "rsa-1")])).await;
    let (app, _) = jwks_app(&jwks).await;
    app.wait_until_serving_within(Duration::from_secs(30)).await;
    let before = jwks.fetches();

    for n in 0..40 {
        let jwt = signed(
            Algorithm::RS256,
            &format!("forged-{n}"),
            &audience_claims("m"),
        );
        let status = probe(&app, &jwt).await.unwrap_err();
        assert_eq!(reason(&status), "UNKNOWN_SIGNING_KEY");
    }

    // One refresh per 10 s for unknown kids, plus perhaps the timer's.
    let fetched = jwks.fetches() - before;
    assert!(fetched <= 3, "{fetched} fetches for 40 unknown kids");
    app.stop().await;
}

#[tokio::test]
async fn while_the_jwks_is_unreachable_at_start_up_health_is_not_serving_and_calls_unavailable() {
    let mut jwks = JwksServer::down(json!([jwk(Algorithm::RS256, "rsa-1")])).await;
    let (app, _) = jwks_app(&jwks).await;
    let jwt = signed(Algorithm::RS256, "rsa-1", &audience_claims("alice"));
    // The database is quick to come up: give it the time to, so that only
    // the keys are missing.
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(app.health().await, ServingStatus::NotServing);
    assert_refused(&app, &jwt, Code::Unavailable, "SIGNING_KEYS_UNAVAILABLE").await;

    jwks.restore().await;
    app.wait_until_serving_within(Duration::from_secs(60)).await;
    probe(&app, &jwt).await.expect("the keys arrived");
    app.stop().await;
}

// The sealed replay token.

on_both_databases!(a_database_dump_and_the_request_id_do_not_reveal_a_replayed_token,);

/// The keystream the first sealing used: derived from nothing but what a
/// client knows (its request id) and what is in the database.
fn keystream(request_id: &str, len: usize) -> Vec<u8> {
    let seed = format!("invites.v1/seal/CreateInvite/alice/{request_id}/0");
    (0u8..)
        .flat_map(|block| {
            let mut hasher = Sha256::new();
            hasher.update(seed.as_bytes());
            hasher.update([block]);
            hasher.finalize()
        })
        .take(len)
        .collect()
}

async fn stored_sealed_tokens(database_url: &str, db: Db) -> Vec<String> {
    let conn = Database::connect(database_url).await.unwrap();
    let backend = match db {
        Db::Sqlite => DbBackend::Sqlite,
        Db::Postgres => DbBackend::Postgres,
    };
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT CAST(sealed_tokens AS TEXT) AS sealed FROM idempotency_keys",
        ))
        .await
        .unwrap()
        .expect("the answer is stored");
    let sealed: String = row.try_get("", "sealed").unwrap();
    conn.close().await.ok();
    serde_json::from_str(&sealed).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn a_database_dump_and_the_request_id_do_not_reveal_a_replayed_token(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request_id = uuid::Uuid::now_v7().to_string();
    let request = pb::CreateInviteRequest {
        request_id: request_id.clone(),
        ..email_invite("org-1", "bob@example.org")
    };
    let (_, first) = create(&mut client, request.clone(), &alice).await;

    let sealed = stored_sealed_tokens(&app.database_url, db).await;
    let (_, replayed) = create(&mut client, request, &alice).await;

    assert_eq!(replayed, first, "a replay returns the same token");
    assert_eq!(sealed.len(), 1);
    let stored = hex::decode(&sealed[0]).expect("a seal is hex");
    // The stored bytes hold neither the token's text nor the bytes it encodes.
    let raw = URL_SAFE_NO_PAD.decode(&first).unwrap();
    assert!(!contains(&stored, first.as_bytes()), "the token in clear");
    assert!(!contains(&stored, &raw), "the token's bytes in clear");
    let opened: Vec<u8> = stored
        .iter()
        .zip(keystream(&request_id, stored.len()))
        .map(|(byte, key)| byte ^ key)
        .collect();
    assert!(
        !String::from_utf8_lossy(&opened).contains(&first),
        "the request id and the dump open the seal"
    );
    app.stop().await;
}

#[tokio::test]
async fn postgres_with_a_public_key_and_no_seal_secret_stops_start_up_naming_the_flag() {
    let mut options = Options::fresh(Db::Postgres).await;
    options.flags = vec![
        "--jwt-public-key".into(),
        fixture("rs256-public.pem"),
        "--jwt-audience".into(),
        "invites".into(),
    ];

    let refused =
        invite_service::startup::Application::build(settings_without_secret(&options)).await;
    options
        .flags
        .extend(["--replay-seal-secret".into(), "s".repeat(32)]);
    let built =
        invite_service::startup::Application::build(settings_without_secret(&options)).await;

    let err = format!("{:#}", refused.err().expect("start-up refused"));
    assert!(err.contains("--replay-seal-secret"), "{err}");
    assert!(built.is_ok(), "with the secret, it starts");
}
