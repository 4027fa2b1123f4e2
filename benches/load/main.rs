//! The load generator: starts the release binary on a fresh database, drives
//! each RPC at each concurrency through the service's own tonic client, runs
//! pgbench's plain transaction for the same RPC beside it, and prints one
//! table with the ratio of each.
//!
//! `cargo bench --bench load` (PostgreSQL); `cargo bench --bench load --
//! --database sqlite` for the embedded default. `--help` lists the knobs.

mod relay;
mod server;
mod stats;
mod workload;
mod yardstick;

use std::{sync::Arc, time::Duration};

use clap::Parser;
use futures_util::StreamExt as _;
use invite_service::pb::invite_service_client::InviteServiceClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    server::Server,
    stats::Run,
    workload::{Rpc, Workload},
};

#[derive(Debug, Parser)]
struct Args {
    /// `postgres` (a fresh database on --postgres-url's server) or `sqlite`.
    #[arg(long, default_value = "postgres")]
    database: String,
    #[arg(
        long,
        env = "TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    #[arg(
        long,
        env = "TEST_AMQP_URL",
        default_value = "amqp://127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// The RPCs to drive, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,accept,get,list,batch"
    )]
    rpcs: Vec<Rpc>,
    /// Concurrent callers, one connection each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    callers: Vec<usize>,
    /// Measured time per RPC and concurrency.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time before each measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Invites prepared for AcceptInvite (one per call).
    #[arg(long, default_value_t = 60_000)]
    accepts: usize,
    /// Events written with the broker away, then drained (0: skip the relay).
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// cargo bench passes `--bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let postgres = args.database == "postgres";
    let database_url = server::fresh_database(postgres, &args.postgres_url).await?;
    let exchange = exchange_name();
    // Bound as a consumer's would be: an unrouted event costs RabbitMQ and
    // the relay a returned message, which no deployment pays.
    let (_broker, consumer, queue) = relay::bind_queue(&args.amqp_url, &exchange).await?;
    let server = Server::start(&database_url, &args.amqp_url, &exchange).await?;
    let channel = connect(&server.address).await?;
    wait_until_serving(channel.clone()).await?;
    let accepts = if args.rpcs.contains(&Rpc::Accept) {
        args.accepts
    } else {
        0
    };
    eprintln!("preparing {accepts} invites to accept…");
    let workload = Workload::new()
        .prepare(&InviteServiceClient::new(channel), accepts.max(100))
        .await?;
    if postgres {
        yardstick::seed(&database_url).await?;
    }
    println!(
        "\n{} on {}, {} s per run after {} s of warm-up\n",
        env!("CARGO_PKG_NAME"),
        args.database,
        args.duration.as_secs(),
        args.warmup.as_secs()
    );
    stats::header();
    for &rpc in &args.rpcs {
        for &callers in &args.callers {
            if rpc == Rpc::Accept && workload.pending() == 0 {
                eprintln!("no invites left to accept: raise --accepts");
                break;
            }
            drive(&server, &workload, rpc, callers, args.warmup).await?;
            let mut run = drive(&server, &workload, rpc, callers, args.duration).await?;
            let yardstick = if postgres {
                yardstick::measure(&database_url, rpc, callers, args.duration).await?
            } else {
                None
            };
            stats::row(rpc.name(), callers, &mut run, yardstick);
        }
    }
    if let Some(rss) = server.peak_rss_mb() {
        println!("\nserver peak RSS: {rss:.1} MB");
    }
    server.stop().await;
    relay::delete_queue(&consumer, &queue).await;
    server::drop_database(postgres, &args.postgres_url, &database_url).await;
    if args.backlog > 0 {
        measure_relay(&args, postgres).await?;
    }
    Ok(())
}

fn exchange_name() -> String {
    format!("invites-bench-{}", uuid::Uuid::now_v7().simple())
}

/// A backlog written while the broker is out of reach, then drained by a
/// server that reaches it; beside it, a raw publisher with confirms; then
/// commit-to-consumer latency at a steady rate.
async fn measure_relay(args: &Args, postgres: bool) -> anyhow::Result<()> {
    let database_url = server::fresh_database(postgres, &args.postgres_url).await?;
    let exchange = exchange_name();
    eprintln!(
        "writing a backlog of {} events with the broker away…",
        args.backlog
    );
    let away = Server::start(&database_url, "amqp://127.0.0.1:1/%2f", &exchange).await?;
    let channel = connect(&away.address).await?;
    wait_until_serving(channel.clone()).await?;
    let writer = Workload::new()
        .prepare(&InviteServiceClient::new(channel), args.backlog)
        .await?;
    drop(writer);
    if let Some(rss) = away.peak_rss_mb() {
        eprintln!("server peak RSS while the broker was away: {rss:.1} MB");
    }
    away.stop().await;
    let waiting = relay::backlog(&database_url).await?;
    let (_broker, consumer, queue) = relay::bind_queue(&args.amqp_url, &exchange).await?;
    let server = Server::start(&database_url, &args.amqp_url, &exchange).await?;
    let drained = relay::drain_rate(&database_url, waiting).await?;
    let raw_rate = |envelope| {
        relay::raw_publish_rate(&args.amqp_url, waiting as usize, EVENT_BODY_BYTES, envelope)
    };
    let raw = raw_rate(relay::Envelope::AsTheRelays).await?;
    let bare = raw_rate(relay::Envelope::Bare).await?;
    consumer
        .queue_purge(queue.as_str().into(), Default::default())
        .await?;
    let channel = connect(&server.address).await?;
    let steady = Workload::new()
        .prepare(&InviteServiceClient::new(channel.clone()), 0)
        .await?;
    let load = tokio::spawn(async move {
        let mut client = InviteServiceClient::new(channel);
        let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / STEADY_RATE));
        for _ in 0..STEADY_EVENTS {
            pace.tick().await;
            let _ = steady.call(Rpc::Create, &mut client).await;
        }
    });
    let (p50, p99) = relay::commit_to_consumer(&consumer, &queue, STEADY_EVENTS as usize).await?;
    load.await?;
    relay::delete_queue(&consumer, &queue).await;
    server.stop().await;
    server::drop_database(postgres, &args.postgres_url, &database_url).await;
    println!(
        "\n| relay | events/s | raw confirmed publish/s, same message | ratio | raw, body only |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| drain {waiting} events | {drained:.0} | {raw:.0} | {:.0}% | {bare:.0} |",
        100.0 * drained / raw
    );
    println!("\ncommit → consumer at {STEADY_RATE} creates/s: p50 {p50:.1} ms, p99 {p99:.1} ms");
    Ok(())
}

/// Creates per second while latency is measured, and how many.
const STEADY_RATE: u64 = 500;
const STEADY_EVENTS: u64 = 5_000;
/// An `invite.created` body as the service writes it, about.
const EVENT_BODY_BYTES: usize = 235;

async fn connect(address: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?)
}

async fn wait_until_serving(channel: Channel) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut health = HealthClient::new(channel);
    for _ in 0..300 {
        let answer = health.check(HealthCheckRequest::default()).await;
        if answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not become SERVING within 30 s")
}

/// `callers` loops calling `rpc` for `duration`, each on its own connection.
async fn drive(
    server: &Server,
    workload: &Arc<Workload>,
    rpc: Rpc,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let mut clients = Vec::with_capacity(callers);
    for _ in 0..callers {
        clients.push(InviteServiceClient::new(connect(&server.address).await?));
    }
    let started = Instant::now();
    let until = started + duration;
    let runs = futures_util::stream::iter(clients)
        .map(|mut client| {
            let workload = workload.clone();
            tokio::spawn(async move {
                let mut run = Run::default();
                while Instant::now() < until {
                    let call = Instant::now();
                    match workload.call(rpc, &mut client).await {
                        Ok(()) => run
                            .latencies
                            .push(u32::try_from(call.elapsed().as_micros()).unwrap_or(u32::MAX)),
                        Err("NO_INVITE_LEFT") => break,
                        Err(code) => *run.errors.entry(code).or_default() += 1,
                    }
                }
                run
            })
        })
        .buffer_unordered(callers)
        .collect::<Vec<_>>()
        .await;
    let mut total = Run::default();
    for run in runs {
        total.merge(run?);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}
