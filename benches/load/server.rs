//! The service under load: the release binary on a fresh database of its
//! own, started as an operator would, with its peak memory read from /proc.

use std::{process::Stdio, time::Duration};

use anyhow::Context as _;
use sea_orm::{ConnectionTrait as _, Database};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");
pub const SECRET: &str = "benchmark-secret-benchmark-secret-0123";

pub struct Server {
    child: Child,
    pub address: String,
}

/// A fresh PostgreSQL database (or SQLite file) named for this run.
pub async fn fresh_database(postgres: bool, admin_url: &str) -> anyhow::Result<String> {
    let name = format!("invites_bench_{}", uuid::Uuid::now_v7().simple());
    if !postgres {
        return Ok(format!("sqlite:///tmp/{name}.db?mode=rwc"));
    }
    let admin = Database::connect(admin_url)
        .await
        .with_context(|| format!("PostgreSQL at {admin_url}"))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let (base, _) = admin_url.rsplit_once('/').context("a database URL")?;
    Ok(format!("{base}/{name}"))
}

/// Drops what `fresh_database` made, so that runs do not pile up on disk.
pub async fn drop_database(postgres: bool, admin_url: &str, database_url: &str) {
    let name = database_url.rsplit('/').next().unwrap_or_default();
    if !postgres {
        let file = name.trim_end_matches("?mode=rwc");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("/tmp/{file}{suffix}"));
        }
        return;
    }
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

impl Server {
    pub async fn start(database_url: &str, amqp_url: &str, exchange: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("AMQP_URL", amqp_url)
            .env("INVITES_EXCHANGE", exchange)
            .env("INVITES_JWT_SECRET", SECRET)
            .env("INVITES_LISTEN", "127.0.0.1:0")
            .env("INVITES_LOG_FORMAT", "json")
            // The shipped log level (info): a line per call is part of the cost.
            .env("INVITES_CREATE_RATE_LIMIT", "0")
            .env("INVITES_TOKEN_RATE_LIMIT", "0")
            .env("INVITES_MAX_CONCURRENT_CALLS", "4096")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start the release binary")?;
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // The start-up line names the address; the pipe is drained after it,
        // or a full pipe would stall the server.
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                let object: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(address) = object["fields"]["listen"].as_str() {
                    return Ok(address.to_owned());
                }
            }
            anyhow::bail!("the server exited before listening")
        })
        .await
        .context("the server did not listen within 30 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, address })
    }

    /// The server's peak resident memory so far (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
