//! The benchmark: every figure in BENCHMARKS.md, each measured side by side
//! with its bare DynamoDB baseline in one run, on the same DynamoDB Local.
//! Run it with `scripts/bench`, which starts the stack and builds what it
//! measures.
//!
//! ```text
//! bench latency [ROUNDS]      consume and keyed consume, p50/p99/mean
//! bench throughput [SECONDS]  1, 16 and 64 concurrent clients; exact admission
//! bench job [SCALE]           the daily job against history (SCALE 1 = the full sizes)
//! bench cold DIR [STARTS [FUNCTION…]]  cold start, size and memory of release binaries
//! bench ci                    request counts per operation; fails on a regression
//! ```
//!
//! Each writes its figures as JSON to `BENCH_OUT` (default `target/bench`)
//! for `scripts/bench-plot`. quota-local's server runs in this process on a
//! real loopback socket; the runtime is single-threaded, so client and server
//! share one core and DynamoDB Local's JVM has the other (the machine this
//! was written on has two).

mod ci;
mod cold;
mod job;
mod latency;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use quota_local::metrics::{RequestLog, counted_client};
use quota_shared::deps::Config;
use quota_shared::store::Store;
use quota_shared::{Clock, Deps};

const SECRET: &str = "bench-secret";

type Http = Client<HttpConnector, Full<Bytes>>;

/// quota-local over HTTP, with an admin token.
#[derive(Clone)]
pub struct Api {
    http: Http,
    base: String,
    token: String,
}

impl Api {
    pub async fn call(&self, method: &str, path: &str, body: &str, key: Option<&str>) -> anyhow::Result<(u16, Bytes)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = self.http.request(req.body(Full::new(Bytes::from(body.to_string())))?).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Creates or updates an org; fails unless the answer is 200 or 201.
    pub async fn org(&self, org: &str, body: &str) -> anyhow::Result<()> {
        let (status, text) = self.call("PUT", &format!("/v1/orgs/{org}"), body, None).await?;
        ensure!(status == 200 || status == 201, "PUT org {org} answered {status}: {}", String::from_utf8_lossy(&text));
        Ok(())
    }
}

/// A fresh table, the service's dependencies on it (DynamoDB requests
/// counted in `log`), and quota-local serving them on a loopback socket.
pub struct Bench {
    pub aws: aws_config::SdkConfig,
    pub table: String,
    pub log: RequestLog,
    pub deps: Deps,
    pub api: Api,
    /// A plain client with the SDK's defaults, for the bare baselines.
    pub bare: aws_sdk_dynamodb::Client,
}

impl Bench {
    pub async fn start(name: &str) -> anyhow::Result<Bench> {
        ensure!(
            std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
            "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/bench, which starts DynamoDB Local"
        );
        let aws = quota_shared::clients::local_config().await;
        let table = format!("bench-{name}-{}", std::process::id());
        let log = RequestLog::default();
        let config = Config::new(
            table.clone(),
            "quota-bench".into(),
            "quota@bench.example".into(),
            "https://app.example.com/usage".into(),
        )?;
        let mut deps = Deps::new(&aws, &config, Clock::system());
        // No channel of the benchmark's may lead anywhere but loopback.
        deps.net = quota_shared::outbound::Net::loopback_only();
        deps.store = Store::new(counted_client(&aws, &log, None), &table);
        quota_local::ensure_local_resources(&deps).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let local = quota_local::Local { deps: deps.clone(), jwt_secret: SECRET.into() };
        tokio::spawn(quota_local::serve(listener, local, std::future::pending()));
        let exp = chrono::Utc::now().timestamp() + 24 * 3600;
        let claims = serde_json::json!({ "sub": "bench", "scope": "quota:admin", "exp": exp });
        let token = quota_local::jwt::mint(SECRET, &claims);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(128).build(connector);
        let api = Api { http, base, token };
        let bare = aws_sdk_dynamodb::Client::new(&aws);
        log.take();
        Ok(Bench { aws, table, log, deps, api, bare })
    }

    /// The DynamoDB requests sent since the last call, as "n Op, …", and
    /// their total.
    pub fn requests(&self) -> (usize, String) {
        let counts = self.log.take_counts();
        let total = counts.values().sum();
        (total, counts.iter().map(|(op, n)| format!("{n} {op}")).collect::<Vec<_>>().join(", "))
    }
}

/// p50, p99 and mean of a series.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Stats {
    pub fn of(samples: &mut [Duration]) -> Stats {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1);
            ms(samples[i])
        };
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        Stats { p50_ms: at(0.50), p99_ms: at(0.99), mean_ms: ms(mean) }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes `value` to `$BENCH_OUT/<name>.json`.
pub fn save(name: &str, value: &serde_json::Value) -> anyhow::Result<()> {
    let dir = std::env::var("BENCH_OUT").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> anyhow::Result<T> {
    match args.get(i) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("not a number: {text}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency::run(arg(&args, 1, 2000)?).await,
        Some("throughput") => throughput::run(arg(&args, 1, 3)?).await,
        Some("job") => job::run(arg(&args, 1, 1.0)?).await,
        Some("job-child") => job::child(&args[1..]).await,
        Some("cold") => {
            let dir = args.get(1).context("bench cold DIR: the directory of the release binaries")?;
            cold::run(PathBuf::from(dir), arg(&args, 2, 9)?, args.get(3..).unwrap_or_default()).await
        }
        Some("ci") => ci::run().await,
        _ => {
            eprintln!("usage: bench latency|throughput|job|cold DIR|ci (see tools/bench/src/main.rs)");
            std::process::exit(2);
        }
    }
}
