//! Benchmark: consume latency through quota-local against a bare UpdateItem
//! on the same DynamoDB Local, interleaved in one run; and the DynamoDB
//! requests each call costs. Run with `scripts/bench` (starts the stack).
//!
//! `bench [ITERATIONS]` (default 2000 of each, after 200 of warm-up).

use std::time::{Duration, Instant};

use anyhow::ensure;
use aws_sdk_dynamodb::types::AttributeValue;
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
const WARMUP: usize = 200;

type Http = Client<HttpConnector, Full<Bytes>>;

struct Api {
    http: Http,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: &str, key: Option<&str>) -> anyhow::Result<(u16, Bytes)> {
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(2000);
    ensure!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/bench, which starts DynamoDB Local"
    );
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = format!("bench-{}", std::process::id());

    // quota-local, in this process, on a real loopback socket.
    let log = RequestLog::default();
    let client = counted_client(&aws, &log);
    let config = Config {
        table_name: table.clone(),
        event_bus: "quota-bench".into(),
        sender_email: "quota@bench.example".into(),
        dashboard_url: "https://app.example.com/usage".into(),
    };
    let mut deps = Deps::new(&aws, &config, Clock::system());
    deps.store = Store::new(client, &table);
    quota_local::ensure_local_resources(&deps).await?;
    let direct = deps.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = quota_local::app(quota_local::Local { deps, jwt_secret: SECRET.into() });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let token = quota_local::jwt::mint(SECRET, &serde_json::json!({ "sub": "bench", "scope": "quota:admin" }));
    let api = Api { http: Client::builder(TokioExecutor::new()).build_http(), base, token };
    let (status, _) = api.call("PUT", "/v1/orgs/bench", r#"{"plan":"pro"}"#, None).await?;
    ensure!(status == 201, "creating the org answered {status}");

    // The bare baseline: the same SDK, a plain client, one counter item.
    let bare = aws_sdk_dynamodb::Client::new(&aws);
    let bare_update = || {
        bare.update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S("BENCH".into()))
            .key("sk", AttributeValue::S("bare".into()))
            .update_expression("ADD used :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
    };

    let consume = "/v1/orgs/bench/usage/conversations/consume";
    let mut t_bare = Vec::with_capacity(iterations);
    let mut t_local = Vec::with_capacity(iterations);
    let mut t_store = Vec::with_capacity(iterations);
    let org = quota_shared::domain::org::OrgId::parse("bench").expect("valid id");
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    for i in 0..WARMUP + iterations {
        let start = Instant::now();
        bare_update().await?;
        let bare_took = start.elapsed();
        let start = Instant::now();
        let (status, _) = api.call("POST", consume, r#"{"amount":1}"#, None).await?;
        let local_took = start.elapsed();
        ensure!(status == 200, "consume answered {status}");
        let start = Instant::now();
        let now = direct.clock.now();
        direct.store.consume(&org, "conversations", kind, 1, None, direct.catalogue, now).await?;
        let store_took = start.elapsed();
        if i >= WARMUP {
            t_bare.push(bare_took);
            t_local.push(local_took);
            t_store.push(store_took);
        }
    }

    let bare = summary(&mut t_bare);
    let store = summary(&mut t_store);
    let local = summary(&mut t_local);
    println!("quota-service benchmark: {iterations} consumes each, interleaved, after {WARMUP} warm-up");
    println!("DynamoDB Local at {}", std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?);
    println!();
    println!("{:<36}{:>10}{:>10}{:>10}", "", "p50", "p99", "mean");
    row("bare UpdateItem (SDK)", bare);
    row("consume, store only (no HTTP)", store);
    row("consume via quota-local (HTTP)", local);
    println!(
        "{:<36}{:>9.2}x{:>9.2}x{:>9.2}x",
        "ratio quota-local / bare",
        ratio(local.0, bare.0),
        ratio(local.1, bare.1),
        ratio(local.2, bare.2)
    );

    // What each call costs, counted on the wire by the server's client.
    println!();
    println!("DynamoDB requests per call (steady state):");
    log.take();
    let cost = |label: &'static str| {
        let counts = log.take_counts();
        let total: usize = counts.values().sum();
        let detail: Vec<String> = counts.iter().map(|(op, n)| format!("{n} {op}")).collect();
        println!("  {label:<32}{total}  ({})", detail.join(", "));
    };
    api.call("POST", consume, r#"{"amount":1}"#, None).await?;
    cost("consume");
    api.call("POST", consume, r#"{"amount":1}"#, Some("bench-key")).await?;
    cost("consume with Idempotency-Key");
    api.call("POST", consume, r#"{"amount":1}"#, Some("bench-key")).await?;
    cost("replay of that key");
    api.call("GET", "/v1/orgs/bench/usage/conversations/check", "", None).await?;
    cost("check");
    api.call("GET", "/v1/orgs/bench/usage", "", None).await?;
    cost("org usage read");
    Ok(())
}

fn summary(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    (at(0.50), at(0.99), mean)
}

fn row(label: &str, (p50, p99, mean): (Duration, Duration, Duration)) {
    println!("{label:<36}{:>10}{:>10}{:>10}", ms(p50), ms(p99), ms(mean));
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
