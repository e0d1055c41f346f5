//! The daily job against stored history: 1 000 orgs with 30 and with 400
//! days of it, and 10 000 orgs with 30 days (orgs times `SCALE`). The
//! benchmark writes the history itself: per org and day a snapshot, per
//! resource and month a settled closed period, and audit entries and
//! idempotency records.
//!
//! Beside the job, in the same run: the bare floor, a parallel `Scan` (the
//! job's segments) of just the items the job needs (profiles and counters,
//! copied to a table of their own), and, for scale, the same scan of the
//! whole table (what a job that scans the table reads). Then the job's own
//! access pattern done bare (a consistent `Query` per org and one write per
//! org), on the copy and on the job's table, and the same state read with
//! `BatchGetItem`. The job runs in a child process (`bench job-child`), so
//! its peak memory is its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use futures::StreamExt;
use quota_local::metrics::{RequestLog, counted_client};
use quota_shared::deps::Config;
use quota_shared::store::Store;
use quota_shared::{Clock, Deps};
use serde_json::json;

use crate::{Bench, save};

type Item = HashMap<String, AttributeValue>;

/// Writes in flight while the history is generated.
const WRITERS: usize = 16;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// One org's stored history, shaped as the service writes it.
fn history(org: &str, days: i64, resources: &[String]) -> Vec<Item> {
    let pk = format!("ORG#{org}");
    let today = chrono::Utc::now().date_naive();
    let mut items = Vec::new();
    for day in 0..days {
        let date = today - chrono::Duration::days(day + 1);
        let used: HashMap<String, AttributeValue> = resources.iter().map(|r| (r.clone(), n(day * 3 % 97))).collect();
        let lim: HashMap<String, AttributeValue> = resources.iter().map(|r| (r.clone(), n(100))).collect();
        items.push(HashMap::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s(format!("SNAP#{date}"))),
            ("type".into(), s("snapshot")),
            ("date".into(), s(date.to_string())),
            ("used".into(), AttributeValue::M(used)),
            ("lim".into(), AttributeValue::M(lim)),
            ("ttl".into(), n(4_102_444_800)),
        ]));
    }
    for month in 0..(days / 30).max(1) {
        let end = chrono::Utc::now() - chrono::Duration::days(30 * month);
        let start = end - chrono::Duration::days(30);
        for resource in resources {
            items.push(HashMap::from([
                ("pk".into(), s(&pk)),
                ("sk".into(), s(format!("CLOSED#{resource}#{}#{}", start.timestamp(), end.timestamp()))),
                ("type".into(), s("closed-period")),
                ("orgId".into(), s(org)),
                ("resource".into(), s(resource)),
                ("plan".into(), s("growth")),
                ("start".into(), s(start.to_rfc3339())),
                ("end".into(), s(end.to_rfc3339())),
                ("used".into(), n(42)),
                ("lim".into(), n(100)),
                ("enf".into(), s("soft")),
                ("overage".into(), n(0)),
                ("closedAt".into(), s(end.to_rfc3339())),
                ("emittedAt".into(), s(end.to_rfc3339())),
                ("notified".into(), AttributeValue::Ns(vec!["80".into()])),
                ("ntop".into(), n(80)),
            ]));
        }
    }
    for i in 0..5 {
        items.push(HashMap::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s(format!("AUDIT#2026-01-0{}T00:00:00.000000Z#{i:016x}", i + 1))),
            ("type".into(), s("audit")),
            ("at".into(), s("2026-01-01T00:00:00.000Z")),
            ("actor".into(), s("admin@example.com")),
            ("action".into(), s("limits_changed")),
            ("before".into(), s("{\"users\":3}")),
            ("after".into(), s("{\"users\":5}")),
        ]));
    }
    for i in 0..20 {
        items.push(HashMap::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s(format!("IDEM#conversations#request-{i:08}"))),
            ("type".into(), s("idempotency")),
            ("fingerprint".into(), s("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")),
            ("createdAt".into(), s("2026-01-01T00:00:00.000Z")),
            ("ttl".into(), n(4_102_444_800)),
        ]));
    }
    items
}

/// An org's profile and counters, copied from the seed org's.
fn state(seed: &[Item], org: &str) -> Vec<Item> {
    seed.iter()
        .cloned()
        .map(|mut item| {
            item.insert("pk".into(), s(format!("ORG#{org}")));
            for name in ["orgId", "jobOrg"] {
                if item.contains_key(name) {
                    item.insert(name.into(), s(org));
                }
            }
            item
        })
        .collect()
}

async fn write_all(client: &Client, table: &str, items: Vec<Item>) -> anyhow::Result<()> {
    let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(batches)
        .map(|batch| async move {
            let mut requests: Vec<WriteRequest> = batch
                .into_iter()
                .map(|item| {
                    Ok(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build())
                })
                .collect::<anyhow::Result<_>>()?;
            while !requests.is_empty() {
                let out = client.batch_write_item().request_items(table, std::mem::take(&mut requests)).send().await?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            }
            Ok(())
        })
        .buffer_unordered(WRITERS)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A parallel scan of a table (or an index), every page of every segment:
/// (items, requests, seconds).
async fn bare_scan(client: &Client, table: &str, index: Option<&str>) -> anyhow::Result<(usize, usize, f64)> {
    let start = Instant::now();
    let segments = (0..usage_job::SEGMENTS).map(|segment| async move {
        let (mut items, mut requests, mut next) = (0, 0, None);
        loop {
            let out = client
                .scan()
                .table_name(table)
                .set_index_name(index.map(str::to_string))
                .segment(segment)
                .total_segments(usage_job::SEGMENTS)
                .set_exclusive_start_key(next)
                .send()
                .await?;
            requests += 1;
            items += out.items().len();
            next = out.last_evaluated_key;
            if next.is_none() {
                return Ok::<_, anyhow::Error>((items, requests));
            }
        }
    });
    let mut total = (0, 0);
    for result in futures::future::join_all(segments).await {
        let (items, requests) = result?;
        total = (total.0 + items, total.1 + requests);
    }
    Ok((total.0, total.1, start.elapsed().as_secs_f64()))
}

/// The job's own pattern, bare: one consistent `Query` of each org's state
/// (the job's concurrency in flight), and one small item written per org,
/// 25 to a `BatchWriteItem`: (requests, seconds).
async fn bare_job_pattern(client: &Client, table: &str, orgs: &[String]) -> anyhow::Result<(usize, f64)> {
    let start = Instant::now();
    let in_flight = usage_job::SEGMENTS as usize * usage_job::ORG_CONCURRENCY;
    let read: Vec<anyhow::Result<()>> = futures::stream::iter(orgs)
        .map(|org| async move {
            client
                .query()
                .table_name(table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :state)")
                .expression_attribute_values(":pk", s(format!("ORG#{org}")))
                .expression_attribute_values(":state", s("STATE#"))
                .send()
                .await?;
            Ok(())
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    read.into_iter().collect::<anyhow::Result<()>>()?;
    let marks: Vec<Item> = orgs
        .iter()
        .map(|org| HashMap::from([("pk".into(), s(format!("ORG#{org}"))), ("sk".into(), s("BENCH#MARK"))]))
        .collect();
    write_all(client, table, marks).await?;
    Ok((orgs.len() + orgs.len().div_ceil(25), start.elapsed().as_secs_f64()))
}

/// The same state read as consistent `BatchGetItem`s of 100 keys (profile
/// and every resource's counter of each org), four in flight: (requests,
/// seconds).
async fn bare_batch_get(
    client: &Client,
    table: &str,
    orgs: &[String],
    resources: &[String],
) -> anyhow::Result<(usize, f64)> {
    let start = Instant::now();
    let keys: Vec<Item> = orgs
        .iter()
        .flat_map(|org| {
            let sks = std::iter::once("STATE#PROFILE".to_string())
                .chain(resources.iter().map(|r| format!("STATE#USAGE#{r}")));
            sks.map(move |sk| HashMap::from([("pk".into(), s(format!("ORG#{org}"))), ("sk".into(), s(sk))]))
        })
        .collect();
    let chunks: Vec<Vec<Item>> = keys.chunks(100).map(<[Item]>::to_vec).collect();
    let results: Vec<anyhow::Result<usize>> = futures::stream::iter(chunks)
        .map(|mut keys| async move {
            let mut requests = 0;
            while !keys.is_empty() {
                let wanted = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build()?;
                let out = client.batch_get_item().request_items(table, wanted).send().await?;
                requests += 1;
                keys = out.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys).unwrap_or_default();
            }
            Ok(requests)
        })
        .buffer_unordered(usage_job::SEGMENTS as usize)
        .collect()
        .await;
    let requests = results.into_iter().sum::<anyhow::Result<usize>>()?;
    Ok((requests, start.elapsed().as_secs_f64()))
}

/// What `bench job-child` reports.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ChildReport {
    seconds: f64,
    orgs_seen: usize,
    requests: std::collections::BTreeMap<String, usize>,
    peak_rss_kib: u64,
}

/// `bench job-child TABLE`: one run of the job over TABLE, reported as JSON
/// on stdout.
pub async fn child(args: &[String]) -> anyhow::Result<()> {
    let table = args.first().context("bench job-child TABLE")?;
    let aws = quota_shared::clients::local_config().await;
    let config = Config::new(
        table.clone(),
        "quota-bench".into(),
        "quota@bench.example".into(),
        "https://app.example.com".into(),
    )?;
    let log = RequestLog::default();
    let mut deps = Deps::new(&aws, &config, Clock::system());
    deps.store = Store::new(counted_client(&aws, &log, None), table);
    let start = Instant::now();
    let summary = usage_job::run(&deps, deps.clock.now()).await;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(summary.complete(), "the job failed: {summary:?}");
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_default();
    let report = ChildReport { seconds, orgs_seen: summary.orgs_seen, requests: log.take_counts(), peak_rss_kib };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn scenario(orgs: usize, days: i64) -> anyhow::Result<serde_json::Value> {
    let bench = Arc::new(Bench::start(&format!("job{orgs}x{days}")).await?);
    let client = &bench.bare;
    // The seed: one org through the API, with every resource's counter.
    bench.api.org("seed", r#"{"plan":"growth"}"#).await?;
    let resources: Vec<String> = bench.deps.catalogue.resources.keys().cloned().collect();
    for r in &resources {
        let (status, _) =
            bench.api.call("POST", &format!("/v1/orgs/seed/usage/{r}/consume"), r#"{"amount":1}"#, None).await?;
        ensure!(status == 200, "seeding {r} answered {status}");
    }
    let seed = client
        .query()
        .table_name(&bench.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :state)")
        .expression_attribute_values(":pk", s("ORG#seed"))
        .expression_attribute_values(":state", s("STATE#"))
        .send()
        .await?
        .items
        .unwrap_or_default();
    ensure!(seed.len() == resources.len() + 1, "the seed org has {} state items", seed.len());

    // The table: every org's state and history; beside it, a table of just
    // the state, for the floor.
    let needed = format!("{}-needed", bench.table);
    quota_shared::store::schema::ensure_table(client, &needed).await?;
    let started = Instant::now();
    let names: Vec<String> = (0..orgs).map(|i| format!("org-{i:05}")).collect();
    for chunk in names.chunks(200) {
        let mut all = Vec::new();
        let mut just_state = Vec::new();
        for org in chunk {
            let state = state(&seed, org);
            just_state.extend(state.iter().cloned());
            all.extend(state);
            all.extend(history(org, days, &resources));
        }
        write_all(client, &bench.table, all).await?;
        write_all(client, &needed, just_state).await?;
    }
    let items_per_org = 1 + resources.len() + history("x", days, &resources).len();
    println!("  wrote {orgs} orgs x {items_per_org} items in {:.0} s", started.elapsed().as_secs_f64());

    let (needed_items, needed_requests, needed_seconds) = bare_scan(client, &needed, None).await?;
    let (all_items, all_requests, all_seconds) = bare_scan(client, &bench.table, None).await?;
    let exe = std::env::current_exe()?;
    let output = tokio::process::Command::new(exe).arg("job-child").arg(&bench.table).output().await?;
    ensure!(output.status.success(), "job-child: {}", String::from_utf8_lossy(&output.stderr));
    let report: ChildReport = serde_json::from_slice(&output.stdout).context("the child's report")?;
    ensure!(report.orgs_seen == orgs + 1, "the job saw {} orgs of {}", report.orgs_seen, orgs + 1);
    let requests: usize = report.requests.values().sum();
    let detail: Vec<String> = report.requests.iter().map(|(op, n)| format!("{n} {op}")).collect();
    println!(
        "  {:>6} orgs x {:>3} days: job {:>6.2} s, {:>6} requests ({:.3}/org: {}), peak RSS {:.1} MB",
        orgs,
        days,
        report.seconds,
        requests,
        requests as f64 / report.orgs_seen as f64,
        detail.join(", "),
        report.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  bare parallel Scan of the needed items: {needed_seconds:>6.2} s ({needed_items} items, {needed_requests} requests); job / bare = {:.2}x",
        report.seconds / needed_seconds
    );
    println!(
        "  parallel Scan of the whole table:       {all_seconds:>6.2} s ({all_items} items, {all_requests} requests)"
    );
    let (pattern_requests, pattern_seconds) = bare_job_pattern(client, &needed, &names).await?;
    println!(
        "  bare Query per org + 1 write per org:   {pattern_seconds:>6.2} s ({pattern_requests} requests); job / this = {:.2}x",
        report.seconds / pattern_seconds
    );
    // The same on the job's own table: DynamoDB Local's requests slow down
    // as its table grows (real DynamoDB's do not), which the copy hides.
    let (_, on_table_seconds) = bare_job_pattern(client, &bench.table, &names).await?;
    println!(
        "    the same on the job's table:          {on_table_seconds:>6.2} s; job / this = {:.2}x",
        report.seconds / on_table_seconds
    );
    let (get_requests, get_seconds) = bare_batch_get(client, &needed, &names, &resources).await?;
    println!("  bare consistent BatchGetItem, 100 keys: {get_seconds:>6.2} s ({get_requests} requests)");
    client.delete_table().table_name(&needed).send().await?;
    client.delete_table().table_name(&bench.table).send().await?;
    Ok(json!({
        "orgs": orgs, "days": days, "items_per_org": items_per_org,
        "job": { "seconds": report.seconds, "requests": report.requests, "requests_per_org": requests as f64 / report.orgs_seen as f64,
                 "peak_rss_mb": report.peak_rss_kib as f64 / 1024.0 },
        "bare_needed_scan": { "seconds": needed_seconds, "items": needed_items, "requests": needed_requests },
        "whole_table_scan": { "seconds": all_seconds, "items": all_items, "requests": all_requests },
        "bare_job_pattern": { "seconds": pattern_seconds, "requests": pattern_requests },
        "bare_job_pattern_on_its_table": { "seconds": on_table_seconds },
        "bare_batch_get": { "seconds": get_seconds, "requests": get_requests },
        "ratio": report.seconds / needed_seconds,
    }))
}

pub async fn run(scale: f64) -> anyhow::Result<()> {
    println!("Daily job against stored history (scale {scale}):");
    let mut results = Vec::new();
    // History grows from the first to the second, orgs from the first to
    // the third: what the job costs per org should follow neither.
    for (orgs, days) in [(1000, 30), (1000, 400), (10_000, 30)] {
        let orgs = ((orgs as f64 * scale).round() as usize).max(1);
        results.push(scenario(orgs, days).await?);
    }
    save("job", &json!({ "scale": scale, "scenarios": results }))
}
