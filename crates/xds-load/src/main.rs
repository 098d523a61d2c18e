//! `trellis-xds-load`: plays N sidecars against a running control plane, half
//! state-of-the-world and half delta ADS (`--delta-percent`), multiplexed
//! over a few HTTP/2 connections, and measures how long each proxy takes
//! from a config change to its ACK of the config carrying it.
//!
//! Driven line by line on stdin (see bench/scale.py), answering JSON lines
//! on stdout:
//! - `wait-ready SECONDS`: until every proxy ACKed CDS, EDS, LDS and RDS
//!   and pushes have been quiet for a second;
//! - `mark`: a config change is about to be made, start the clock;
//! - `report QUIET_MS SECONDS`: once no response came for QUIET_MS (or
//!   after SECONDS), time-to-ACK over the proxies that received anything;
//! - `quit` (or end of input).
//!
//! Proxy `i` is the workload of service `svc-(i mod M)`, replica `i div M`,
//! with address `127.(101 + replica).(s / 256).(s mod 256)`: bench/scale.py
//! writes WorkloadEntries at those addresses.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod delta;
mod record;
mod sotw;
mod wire;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncBufReadExt;
use tonic::transport::{Channel, Endpoint};
use trellis_xds::node::Interception;
use trellis_xds::{NodeInfo, ProxyKind, type_url};

use record::Recorder;

const ALL_TYPES: u64 = 0b1111;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "Simulated sidecars against a Trellis (or any) xDS server")]
struct Args {
    /// The control plane's plaintext xDS address.
    #[arg(long, default_value = "http://127.0.0.1:15010")]
    xds: String,
    /// How many proxies to simulate.
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// How many services the proxies' workloads are spread over.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// The workloads' namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Percentage of proxies that use delta xDS (the rest: state of the world).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    delta_percent: u8,
    /// HTTP/2 connections the streams are multiplexed over.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Proxies connected per second while starting (0: all at once).
    #[arg(long, default_value_t = 2000)]
    connect_rate: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.services > 0 && args.connections > 0,
        "--services and --connections must be positive"
    );
    anyhow::ensure!(
        args.proxies <= args.services * 154,
        "at most 154 replicas per service"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(args.xds.clone())
        .context("--xds")?
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(1 << 20))
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.xds))?,
        );
    }
    let recorder = Arc::new(Recorder::new(args.proxies));
    let started = Instant::now();
    for proxy in 0..args.proxies {
        let channel = channels[proxy % channels.len()].clone();
        let delta = (proxy % 100) < usize::from(args.delta_percent);
        let node = node_of(proxy, args.services, &args.namespace).to_node();
        tokio::spawn(keep_connected(
            channel,
            node,
            proxy,
            delta,
            recorder.clone(),
        ));
        if args.connect_rate > 0 && proxy % 100 == 99 {
            tokio::time::sleep(Duration::from_secs_f64(
                100.0 / f64::from(args.connect_rate),
            ))
            .await;
        }
    }
    eprintln!(
        "xds-load: {} proxies started in {:?}",
        args.proxies,
        started.elapsed()
    );
    serve_commands(&recorder, args.proxies, started).await
}

/// Proxy `index`'s identity (see the module docs).
fn node_of(index: usize, services: usize, namespace: &str) -> NodeInfo {
    let service = index % services;
    let replica = index / services;
    let ip = Ipv4Addr::new(
        127,
        101 + replica as u8,
        (service >> 8) as u8,
        service as u8,
    );
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: IpAddr::V4(ip),
        pod_name: format!("svc-{service}-{replica}"),
        namespace: namespace.into(),
        service_account: "default".into(),
        workload_name: format!("svc-{service}"),
        labels: [("app".to_string(), format!("svc-{service}"))].into(),
        interception: Interception::Redirect,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// Runs one proxy's stream, reconnecting with backoff, until the process ends.
async fn keep_connected(
    channel: Channel,
    node: envoy_types::pb::envoy::config::core::v3::Node,
    proxy: usize,
    delta: bool,
    recorder: Arc<Recorder>,
) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let result = if delta {
            delta::run(channel.clone(), node.clone(), proxy, recorder.clone()).await
        } else {
            sotw::run(channel.clone(), node.clone(), proxy, recorder.clone()).await
        };
        if let Err(status) = result {
            eprintln!("xds-load: proxy {proxy}: {status}; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn serve_commands(
    recorder: &Recorder,
    proxies: usize,
    started: Instant,
) -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut since = recorder.mark();
    let mut marked = Instant::now();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number =
            |i: usize, default: f64| words.get(i).and_then(|w| w.parse().ok()).unwrap_or(default);
        let answer = match words.first().copied() {
            Some("wait-ready") => {
                let deadline = Instant::now() + Duration::from_secs_f64(number(1, 600.0));
                while (recorder.ready(ALL_TYPES) < proxies || recorder.quiet_ms() < 1000.0)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                serde_json::json!({
                    "event": "ready",
                    "ready": recorder.ready(ALL_TYPES),
                    "proxies": proxies,
                    "bytes": recorder.bytes(),
                    "seconds": started.elapsed().as_secs_f64(),
                    "cpuSeconds": record::own_cpu_seconds(),
                })
            }
            Some("mark") => {
                since = recorder.mark();
                marked = Instant::now();
                serde_json::json!({"event": "marked"})
            }
            Some("report") => {
                let quiet = number(1, 2000.0);
                let deadline = Instant::now() + Duration::from_secs_f64(number(2, 120.0));
                // Settled: something arrived since the mark, then nothing for `quiet`.
                while (recorder.window(since).responses == 0
                    || recorder.quiet_ms() < quiet
                    || marked.elapsed().as_secs_f64() * 1000.0 < quiet)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let window = recorder.window(since);
                serde_json::json!({
                    "event": "report",
                    "window": window,
                    "cpuSeconds": record::own_cpu_seconds(),
                })
            }
            Some("quit") => break,
            _ => {
                serde_json::json!({"event": "error", "message": format!("unknown command {line:?}")})
            }
        };
        println!("{answer}");
    }
    Ok(())
}

fn known_type(url: &str) -> Option<&'static str> {
    type_url::PUSH_ORDER.into_iter().find(|t| *t == url)
}

fn type_bit(url: &str) -> u64 {
    match url {
        type_url::CLUSTER => 1,
        type_url::ENDPOINT => 2,
        type_url::LISTENER => 4,
        type_url::ROUTE => 8,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_map_to_distinct_workload_addresses() {
        let a = node_of(0, 1000, "default");
        let b = node_of(1000, 1000, "default");
        let c = node_of(999, 1000, "default");
        assert_eq!(a.ip.to_string(), "127.101.0.0");
        assert_eq!(b.ip.to_string(), "127.102.0.0");
        assert_eq!(c.ip.to_string(), "127.101.3.231");
        assert_eq!(a.labels["app"], "svc-0");
        assert_eq!(b.labels["app"], "svc-0");
    }
}
