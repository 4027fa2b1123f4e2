//! The fixed yardstick: pgbench running each RPC's plain transaction
//! (benches/pgbench/*.sql), prepared, on the same tables and indexes, at the
//! same concurrency. It stays as it is when the service's SQL improves.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::Context as _;
use tokio::process::Command;

use crate::{stats::Yardstick, workload::Rpc};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pgbench");
/// Invites seeded for the accept script to lock.
const SEEDED: usize = 20_000;

/// The script that stands for `rpc`, if there is one.
fn script(rpc: Rpc) -> Option<&'static str> {
    match rpc {
        Rpc::Create => Some("create.sql"),
        Rpc::Accept => Some("accept.sql"),
        _ => None,
    }
}

/// Seeds what the accept script locks (once per database).
pub async fn seed(database_url: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .args([database_url, "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", &format!("seeded={SEEDED}")])
        .args(["-f", &format!("{SCRIPTS}/seed.sql")])
        .stdout(Stdio::null())
        .status()
        .await
        .context("psql (install postgresql-client)")?;
    anyhow::ensure!(status.success(), "seeding the accept yardstick failed");
    Ok(())
}

pub async fn measure(
    database_url: &str,
    rpc: Rpc,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<Option<Yardstick>> {
    let Some(script) = script(rpc) else {
        return Ok(None);
    };
    // Each thread logs one line per transaction; the third field is its
    // latency in microseconds.
    let logs = std::env::temp_dir().join(format!("pgbench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&logs)?;
    let output = Command::new("pgbench")
        .current_dir(&logs)
        .args(["-n", "-M", "prepared", "-l", "--log-prefix=tx"])
        .args(["-c", &callers.to_string(), "-j", &callers.to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .args(["-D", &format!("seeded={SEEDED}")])
        .args(["-f", &Path::new(SCRIPTS).join(script).display().to_string()])
        .arg(database_url)
        .output()
        .await
        .context("pgbench (install postgresql-contrib)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let p99_ms = logged_p99_ms(&logs);
    let _ = std::fs::remove_dir_all(&logs);
    Ok(Some(Yardstick {
        rate: number_after("tps = ").context("pgbench printed no tps")?,
        latency_ms: number_after("latency average = ").unwrap_or_default(),
        p99_ms: p99_ms?,
    }))
}

/// The 99th percentile of the transaction latencies in pgbench's logs.
fn logged_p99_ms(logs: &Path) -> anyhow::Result<f64> {
    let mut micros = Vec::new();
    for entry in std::fs::read_dir(logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        micros.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
    }
    anyhow::ensure!(!micros.is_empty(), "pgbench logged no transactions");
    micros.sort_unstable();
    let at = ((micros.len() as f64 * 0.99).ceil() as usize).clamp(1, micros.len()) - 1;
    Ok(micros[at] as f64 / 1000.0)
}
