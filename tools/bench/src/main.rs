//! Benchmark: consume latency through quota-local against a bare UpdateItem
//! on the same DynamoDB Local, side by side in one run (with the store call
//! and the handler alone, to show where time goes); the DynamoDB requests
//! each call costs; and the daily job's requests at two sizes. Run with
//! `scripts/bench` (starts the stack).
//!
//! quota-local's server runs in this process on a real loopback socket. The
//! runtime is single-threaded: client and server share one core, and
//! DynamoDB Local's JVM has the other (the machine this was written on has two).
//!
//! `bench [ITERATIONS]` (default 2000 of each, after 200 of warm-up).

use std::time::{Duration, Instant};

use anyhow::ensure;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures::StreamExt;
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

#[tokio::main(flavor = "current_thread")]
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
    let client = counted_client(&aws, &log, None);
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
    let local = quota_local::Local { deps, jwt_secret: SECRET.into() };
    tokio::spawn(quota_local::serve(listener, local, std::future::pending()));

    let token = quota_local::jwt::mint(SECRET, &serde_json::json!({ "sub": "bench", "scope": "quota:admin" }));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let api = Api { http: Client::builder(TokioExecutor::new()).build(connector), base, token };
    // Steady state: a limit this run never comes near, so no consume crosses
    // a notification threshold (a crossing adds its event and email).
    let body = r#"{"plan":"pro","limits":{"conversations":1000000000000}}"#;
    let (status, _) = api.call("PUT", "/v1/orgs/bench", body, None).await?;
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
    let mut t_handler = Vec::with_capacity(iterations);
    let org = quota_shared::domain::org::OrgId::parse("bench").expect("valid id");
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    // Side by side: each round runs all three, in an order that rotates
    // from round to round, so none always follows another's write.
    let claims = std::collections::HashMap::from([
        ("sub".to_string(), "bench".to_string()),
        ("scope".to_string(), "quota:admin".to_string()),
    ]);
    for i in 0..WARMUP + iterations {
        for step in 0..4 {
            let which = (i + step) % 4;
            // The handler series gets its request ready before the clock starts.
            let event = (which == 3).then(|| {
                let ev = quota_local::apigw_event(
                    &hyper::Method::POST,
                    consume,
                    "",
                    &Default::default(),
                    br#"{"amount":1}"#,
                    Some(&claims),
                );
                quota_local::request_from_event(&ev).expect("the event parses")
            });
            let start = Instant::now();
            match (which, event) {
                (0, _) => {
                    bare_update().await?;
                }
                (1, _) => {
                    let (status, _) = api.call("POST", consume, r#"{"amount":1}"#, None).await?;
                    ensure!(status == 200, "consume answered {status}");
                }
                (3, Some(req)) => {
                    let response = quota_local::dispatch(&direct, req).await;
                    ensure!(response.status() == 200, "handler answered {}", response.status());
                }
                _ => {
                    let now = direct.clock.now();
                    direct.store.consume(&org, "conversations", kind, 1, None, direct.catalogue, now).await?;
                }
            }
            let took = start.elapsed();
            if i >= WARMUP {
                [&mut t_bare, &mut t_local, &mut t_store, &mut t_handler][which].push(took);
            }
        }
    }

    let bare = summary(&mut t_bare);
    let store = summary(&mut t_store);
    let local = summary(&mut t_local);
    println!("quota-service benchmark: {iterations} rounds of each, order rotating, after {WARMUP} warm-up");
    println!("DynamoDB Local at {}", std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?);
    println!();
    println!("{:<36}{:>10}{:>10}{:>10}", "", "p50", "p99", "mean");
    row("bare UpdateItem (SDK)", bare);
    row("consume, store only", store);
    row("consume, handler (no HTTP)", summary(&mut t_handler));
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

    // The daily job: requests and time for one run, at two sizes.
    println!();
    println!("Daily job, one run (no emails owed; {} segments):", usage_job::SEGMENTS);
    println!("  {:>6}  {:>9}  {:>9}  {:>9}  by operation", "orgs", "requests", "per org", "seconds");
    let mut created = 0;
    for orgs in [100usize, 1000] {
        let patch = quota_shared::domain::org::OrgPatch { plan: Some("growth".into()), ..Default::default() };
        futures::stream::iter(created..orgs)
            .for_each_concurrent(32, |i| {
                let (deps, patch) = (&direct, &patch);
                async move {
                    let org = quota_shared::domain::org::OrgId::parse(&format!("job-{i:05}")).expect("valid id");
                    deps.store.put_org(&org, patch, "bench", deps.catalogue, deps.clock.now()).await.expect("org");
                }
            })
            .await;
        created = orgs;
        log.take();
        let start = Instant::now();
        let summary = usage_job::run(&direct, direct.clock.now()).await;
        let took = start.elapsed();
        ensure!(summary.complete(), "job failures: {summary:?}");
        let counts = log.take_counts();
        let total: usize = counts.values().sum();
        let detail: Vec<String> = counts.iter().map(|(op, n)| format!("{n} {op}")).collect();
        println!(
            "  {:>6}  {:>9}  {:>9.3}  {:>9.2}  {}",
            summary.orgs_seen,
            total,
            total as f64 / summary.orgs_seen as f64,
            took.as_secs_f64(),
            detail.join(", ")
        );
    }
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
