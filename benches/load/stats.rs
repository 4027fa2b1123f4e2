//! Latencies and outcomes of one run, and the table they are printed in.

use std::{collections::BTreeMap, time::Duration};

/// What one RPC did at one concurrency.
#[derive(Default)]
pub struct Run {
    /// Microseconds per successful call.
    pub latencies: Vec<u32>,
    pub errors: BTreeMap<&'static str, usize>,
    pub elapsed: Duration,
}

impl Run {
    pub fn merge(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }

    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `quantile` (0..=1), in milliseconds.
    pub fn percentile(&mut self, quantile: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort_unstable();
        let at = ((self.latencies.len() - 1) as f64 * quantile).round() as usize;
        f64::from(self.latencies[at]) / 1000.0
    }

    pub fn errors(&self) -> String {
        if self.errors.is_empty() {
            return "–".into();
        }
        self.errors
            .iter()
            .map(|(code, count)| format!("{code}×{count}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// pgbench's figures for the same transaction at the same concurrency.
#[derive(Clone, Copy)]
pub struct Yardstick {
    pub rate: f64,
    pub latency_ms: f64,
    /// From pgbench's per-transaction log.
    pub p99_ms: f64,
}

pub fn header() {
    println!(
        "| RPC | callers | calls/s | p50 ms | p90 ms | p99 ms | max ms | errors | pgbench tps | pgbench avg ms | pgbench p99 ms | ratio | p99 ÷ pgbench p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

pub fn row(rpc: &str, callers: usize, run: &mut Run, yardstick: Option<Yardstick>) {
    let (tps, average, p99, ratio, p99_ratio) = match yardstick {
        Some(y) => (
            format!("{:.0}", y.rate),
            format!("{:.2}", y.latency_ms),
            format!("{:.2}", y.p99_ms),
            format!("{:.0}%", 100.0 * run.rate() / y.rate),
            format!("{:.1}×", run.percentile(0.99) / y.p99_ms),
        ),
        None => ("–".into(), "–".into(), "–".into(), "–".into(), "–".into()),
    };
    println!(
        "| {rpc} | {callers} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {tps} | {average} | {p99} | {ratio} | {p99_ratio} |",
        run.rate(),
        run.percentile(0.5),
        run.percentile(0.9),
        run.percentile(0.99),
        run.percentile(1.0),
        run.errors(),
    );
}
