//! The benchmark's small mode, for CI (well under a minute): the DynamoDB
//! requests each operation costs, counted on the wire, against what they
//! cost today. Any operation that needs more fails the build; one that
//! needs fewer is reported, so the budget can be lowered with it.

use anyhow::{bail, ensure};
use serde_json::json;

use crate::{Bench, save};

/// Each operation's budget: requests by DynamoDB operation.
const BUDGET: &[(&str, &[(&str, usize)])] = &[
    ("consume", &[("UpdateItem", 1)]),
    ("consume refused at the limit", &[("UpdateItem", 1)]),
    ("consume with Idempotency-Key", &[("GetItem", 1), ("TransactWriteItems", 1)]),
    ("replay of that key", &[("GetItem", 1), ("TransactWriteItems", 1)]),
    ("release", &[("UpdateItem", 1)]),
    ("check", &[("GetItem", 1)]),
    ("org usage read", &[("Query", 1)]),
    ("history read", &[("Query", 1)]),
    ("reserve", &[("UpdateItem", 1)]),
    ("reserve with Idempotency-Key", &[("GetItem", 1), ("TransactWriteItems", 1)]),
    ("commit of nothing", &[("TransactWriteItems", 1)]),
    ("commit of units (+ read for thresholds)", &[("GetItem", 1), ("TransactWriteItems", 1)]),
    ("release a reservation", &[("TransactWriteItems", 1)]),
    ("features read", &[("GetItem", 1)]),
    ("one feature read", &[("GetItem", 1)]),
    // Admin writes also read the org's outbox and take their event off it
    // once published: one Query, one DeleteItem.
    ("grant added (admin)", &[("GetItem", 1), ("TransactWriteItems", 1), ("Query", 1), ("DeleteItem", 1)]),
    ("grant revoked (admin)", &[("GetItem", 1), ("Query", 2), ("TransactWriteItems", 1), ("DeleteItem", 1)]),
    ("daily job, 200 orgs: per org", &[("Query", 1)]),
];

/// The job's requests besides one `Query` per org: snapshot batches of 25
/// orgs and index pages, for 200 orgs at most this many.
const JOB_OVERHEAD: usize = 200 / 25 + 2 * usage_job::SEGMENTS as usize + 4;

pub async fn run() -> anyhow::Result<()> {
    let bench = Bench::start("ci").await?;
    let api = &bench.api;
    api.org("ci", r#"{"plan":"pro","limits":{"conversations":1000000000000}}"#).await?;
    api.org("ci-hard", r#"{"plan":"free","limits":{"conversations":1}}"#).await?;
    let consume = "/v1/orgs/ci/usage/conversations/consume";
    // Counters exist from here on (the first write of each creates it).
    api.call("POST", consume, r#"{"amount":1}"#, None).await?;
    api.call("POST", "/v1/orgs/ci-hard/usage/conversations/consume", r#"{"amount":1}"#, None).await?;
    bench.log.take();

    let mut measured: Vec<(&str, std::collections::BTreeMap<String, usize>)> = Vec::new();
    // Each operation must give the answer it is measured for: a request
    // that fails early costs less and would hide a regression.
    let mut step = async |label: &'static str, method: &str, path: &str, body: &str, key: Option<&str>, want: u16| {
        let (status, text) = api.call(method, path, body, key).await?;
        ensure!(status == want, "{label}: answered {status}, not {want}: {}", String::from_utf8_lossy(&text));
        measured.push((label, bench.log.take_counts()));
        anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&text).unwrap_or_default())
    };
    step("consume", "POST", consume, r#"{"amount":1}"#, None, 200).await?;
    let hard = "/v1/orgs/ci-hard/usage/conversations/consume";
    step("consume refused at the limit", "POST", hard, r#"{"amount":1}"#, None, 429).await?;
    step("consume with Idempotency-Key", "POST", consume, r#"{"amount":1}"#, Some("ci-key"), 200).await?;
    step("replay of that key", "POST", consume, r#"{"amount":1}"#, Some("ci-key"), 200).await?;
    let contacts = "/v1/orgs/ci/usage/contacts";
    api.call("POST", &format!("{contacts}/consume"), r#"{"amount":2}"#, None).await?;
    bench.log.take();
    step("release", "POST", &format!("{contacts}/release"), r#"{"amount":1}"#, None, 200).await?;
    step("check", "GET", "/v1/orgs/ci/usage/conversations/check", "", None, 200).await?;
    step("org usage read", "GET", "/v1/orgs/ci/usage", "", None, 200).await?;

    let reserve = "/v1/orgs/ci/usage/conversations/reserve";
    let id = |reply: serde_json::Value| reply["reservationId"].as_str().unwrap_or_default().to_string();
    let r = id(step("reserve", "POST", reserve, r#"{"amount":5}"#, None, 201).await?);
    step("commit of nothing", "POST", &format!("/v1/orgs/ci/reservations/{r}/commit"), r#"{"amount":0}"#, None, 200)
        .await?;
    let r = id(step("reserve with Idempotency-Key", "POST", reserve, r#"{"amount":5}"#, Some("ci-rsv"), 201).await?);
    let commit = format!("/v1/orgs/ci/reservations/{r}/commit");
    step("commit of units (+ read for thresholds)", "POST", &commit, "{}", None, 200).await?;
    let (_, text) = api.call("POST", reserve, r#"{"amount":5}"#, None).await?;
    let r = id(serde_json::from_slice(&text)?);
    bench.log.take();
    step("release a reservation", "DELETE", &format!("/v1/orgs/ci/reservations/{r}"), "", None, 200).await?;
    step("features read", "GET", "/v1/orgs/ci/features", "", None, 200).await?;
    step("one feature read", "GET", "/v1/orgs/ci/features/sso", "", None, 200).await?;
    let grant = r#"{"resource":"conversations","amount":10,"reason":"bench"}"#;
    let g = step("grant added (admin)", "POST", "/v1/admin/orgs/ci/grants", grant, None, 201).await?;
    let g = g["grant"]["id"].as_str().unwrap_or_default().to_string();
    step("grant revoked (admin)", "DELETE", &format!("/v1/admin/orgs/ci/grants/{g}"), "", None, 200).await?;

    for i in 0..198 {
        api.org(&format!("ci-job-{i:03}"), r#"{"plan":"growth"}"#).await?;
    }
    bench.log.take();
    let summary = usage_job::run(&bench.deps, bench.deps.clock.now()).await;
    if !summary.complete() || summary.orgs_seen != 200 {
        bail!("the job's run: {summary:?}");
    }
    let job = bench.log.take_counts();
    let queries = job.get("Query").copied().unwrap_or_default();
    let overhead: usize = job.iter().filter(|(op, _)| op.as_str() != "Query").map(|(_, n)| n).sum();
    // The job wrote today's snapshot: the read finds it and needs no more.
    let history = "/v1/orgs/ci/usage/conversations/history?days=30";
    step("history read", "GET", history, "", None, 200).await?;
    measured.push((
        "daily job, 200 orgs: per org",
        [("Query".to_string(), queries / 200)].into_iter().filter(|(_, n)| *n > 0).collect(),
    ));

    let mut failed = Vec::new();
    println!("{:<46}{:>8}{:>8}  detail", "operation", "budget", "used");
    for (label, counts) in &measured {
        let budget = BUDGET.iter().find(|(l, _)| l == label).map(|(_, b)| *b).unwrap_or_default();
        let allowed: usize = budget.iter().map(|(_, n)| n).sum();
        let used: usize = counts.values().sum();
        let detail: Vec<String> = counts.iter().map(|(op, n)| format!("{n} {op}")).collect();
        println!("{label:<46}{allowed:>8}{used:>8}  {}", detail.join(", "));
        for (op, n) in counts {
            let limit = budget.iter().find(|(o, _)| o == op).map_or(0, |(_, n)| *n);
            if *n > limit {
                failed.push(format!("{label}: {n} {op}, budget {limit}"));
            }
        }
        if used < allowed {
            println!("  (fewer than the budget: lower it in tools/bench/src/ci.rs)");
        }
    }
    println!("{:<46}{:>8}{:>8}  {job:?}", "daily job: other requests, 200 orgs", JOB_OVERHEAD, overhead);
    if queries != 200 {
        failed.push(format!("daily job: {queries} Query for 200 orgs"));
    }
    if overhead > JOB_OVERHEAD {
        failed.push(format!("daily job: {overhead} requests besides its Queries, budget {JOB_OVERHEAD}"));
    }
    let report: serde_json::Map<String, serde_json::Value> =
        measured.iter().map(|(label, counts)| (label.to_string(), json!(counts))).collect();
    save("ci", &json!({ "operations": report, "job_other_requests": overhead }))?;
    if !failed.is_empty() {
        bail!("request counts regressed:\n  {}", failed.join("\n  "));
    }
    println!("request counts within budget");
    Ok(())
}
