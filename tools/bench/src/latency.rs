//! Latency of a consume, beside the DynamoDB requests it cannot do without.
//!
//! - consume: the floor is one conditional `UpdateItem` that returns the
//!   counter (`ALL_NEW`), here on a copy of the service's own counter item
//!   with the service's own condition; against it, the store's consume, the
//!   handler (API Gateway event in, response out) and quota-local over HTTP.
//! - keyed consume: the floor is one `TransactWriteItems` (the key's record
//!   and the counter) and one consistent `GetItem` (transactions return no
//!   values); against it, the keyed handler and quota-local.
//!
//! Each round runs every series once, in an order that rotates from round
//! to round, so none always follows another's write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use quota_shared::domain::catalogue::ResourceKind;
use quota_shared::domain::org::OrgId;
use serde_json::json;

use crate::{Bench, Stats, save};

const WARMUP: usize = 200;
const ORG: &str = "bench";
const CONSUME: &str = "/v1/orgs/bench/usage/conversations/consume";
/// The service's consume condition (`store/counters.rs`), for the floor.
const CONDITION: &str = "attribute_exists(pk) \
    AND (attribute_not_exists(pend) OR pend > :now) \
    AND (attribute_not_exists(trialEnd) OR trialEnd > :now) \
    AND (enf = :soft OR attribute_not_exists(lim) OR rem >= :amt) \
    AND used <= :cap";

#[derive(Clone, Copy, PartialEq)]
enum Series {
    Bare,
    Store,
    Handler,
    Local,
    BareKeyed,
    HandlerKeyed,
    LocalKeyed,
}

const SERIES: [Series; 7] = [
    Series::Bare,
    Series::Store,
    Series::Handler,
    Series::Local,
    Series::BareKeyed,
    Series::HandlerKeyed,
    Series::LocalKeyed,
];

impl Series {
    fn label(self) -> &'static str {
        match self {
            Series::Bare => "bare conditional UpdateItem, ALL_NEW",
            Series::Store => "consume, store only",
            Series::Handler => "consume, handler (no HTTP)",
            Series::Local => "consume via quota-local (HTTP)",
            Series::BareKeyed => "bare TransactWriteItems + GetItem",
            Series::HandlerKeyed => "keyed consume, handler",
            Series::LocalKeyed => "keyed consume via quota-local",
        }
    }
}

fn values(now: i64) -> HashMap<String, AttributeValue> {
    let n = |v: i64| AttributeValue::N(v.to_string());
    HashMap::from([
        (":amt".to_string(), n(1)),
        (":neg".to_string(), n(-1)),
        (":now".to_string(), n(now)),
        (":soft".to_string(), AttributeValue::S("soft".into())),
        (":cap".to_string(), n(999_999_999_999)),
    ])
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let bench = Bench::start("latency").await?;
    // Steady state: a limit this run never comes near, so no consume crosses
    // a notification threshold (a crossing adds its event and email).
    bench.api.org(ORG, r#"{"plan":"pro","limits":{"conversations":1000000000000}}"#).await?;
    let (status, _) = bench.api.call("POST", CONSUME, r#"{"amount":1}"#, None).await?;
    ensure!(status == 200, "the first consume answered {status}");

    // The floor works on a copy of the service's counter item.
    let key = |pk: &str| {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.to_string())),
            ("sk".to_string(), AttributeValue::S("STATE#USAGE#conversations".into())),
        ])
    };
    let original = bench.bare.get_item().table_name(&bench.table).set_key(Some(key("ORG#bench"))).send().await?;
    let mut copy = original.item.context("the counter item")?;
    copy.insert("pk".into(), AttributeValue::S("ORG#bare".into()));
    bench.bare.put_item().table_name(&bench.table).set_item(Some(copy)).send().await?;
    let now = || chrono::Utc::now().timestamp();
    let bare_update = || {
        bench
            .bare
            .update_item()
            .table_name(&bench.table)
            .set_key(Some(key("ORG#bare")))
            .update_expression("ADD used :amt, rem :neg")
            .condition_expression(CONDITION)
            .set_expression_attribute_values(Some(values(now())))
            .return_values(ReturnValue::AllNew)
    };
    let bare_keyed = |i: usize| {
        let record = HashMap::from([
            ("pk".to_string(), AttributeValue::S("ORG#bare".into())),
            ("sk".to_string(), AttributeValue::S(format!("IDEM#conversations#bare-{i}"))),
            ("fingerprint".to_string(), AttributeValue::S("0123456789abcdef".into())),
        ]);
        let put = Put::builder()
            .table_name(&bench.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("a put");
        let update = Update::builder()
            .table_name(&bench.table)
            .set_key(Some(key("ORG#bare")))
            .update_expression("ADD used :amt, rem :neg")
            .condition_expression(CONDITION)
            .set_expression_attribute_values(Some(values(now())))
            .build()
            .expect("an update");
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(update).build()];
        bench.bare.transact_write_items().set_transact_items(Some(items))
    };

    let org = OrgId::parse(ORG).context("org id")?;
    let claims =
        HashMap::from([("sub".to_string(), "bench".to_string()), ("scope".to_string(), "quota:admin".to_string())]);
    let event = |key: Option<String>| {
        let mut headers = hyper::HeaderMap::new();
        if let Some(k) = key {
            headers.insert("idempotency-key", k.parse().expect("a header value"));
        }
        let ev =
            quota_local::apigw_event(&hyper::Method::POST, CONSUME, "", &headers, br#"{"amount":1}"#, Some(&claims));
        quota_local::request_from_event(&ev).expect("the event parses")
    };

    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); SERIES.len()];
    for i in 0..WARMUP + rounds {
        for step in 0..SERIES.len() {
            let series = SERIES[(i + step) % SERIES.len()];
            let idem = format!("bench-{i}");
            // Requests for the handler are made before the clock starts.
            let request = match series {
                Series::Handler => Some(event(None)),
                Series::HandlerKeyed => Some(event(Some(idem.clone()))),
                _ => None,
            };
            let start = Instant::now();
            let status = match (series, request) {
                (Series::Bare, _) => bare_update().send().await.map(|_| 200)?,
                (Series::Store, _) => {
                    let deps = &bench.deps;
                    let now = deps.clock.now();
                    let kind = ResourceKind::Period;
                    deps.store.consume(&org, "conversations", kind, 1, None, deps.catalogue, now).await?;
                    200
                }
                (Series::Handler | Series::HandlerKeyed, Some(req)) => {
                    quota_local::dispatch(&bench.deps, req).await.status().as_u16()
                }
                (Series::Local, _) => bench.api.call("POST", CONSUME, r#"{"amount":1}"#, None).await?.0,
                (Series::BareKeyed, _) => {
                    bare_keyed(i).send().await?;
                    bench
                        .bare
                        .get_item()
                        .table_name(&bench.table)
                        .set_key(Some(key("ORG#bare")))
                        .consistent_read(true)
                        .send()
                        .await?;
                    200
                }
                (Series::LocalKeyed, _) => {
                    bench.api.call("POST", CONSUME, r#"{"amount":1}"#, Some(&format!("local-{idem}"))).await?.0
                }
                (_, None) => unreachable!("every handler series has its request"),
            };
            let took = start.elapsed();
            ensure!(status == 200, "{} answered {status}", series.label());
            if i >= WARMUP {
                samples[SERIES.iter().position(|s| *s == series).expect("a series")].push(took);
            }
        }
    }

    let stats: Vec<Stats> = samples.iter_mut().map(|s| Stats::of(s)).collect();
    let of = |series: Series| stats[SERIES.iter().position(|s| *s == series).expect("a series")];
    println!("Latency: {rounds} rounds of each series, order rotating, after {WARMUP} warm-up");
    println!("DynamoDB Local at {}", std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?);
    println!();
    println!("{:<40}{:>10}{:>10}{:>10}", "", "p50 ms", "p99 ms", "mean ms");
    for series in SERIES {
        let s = of(series);
        println!("{:<40}{:>10.3}{:>10.3}{:>10.3}", series.label(), s.p50_ms, s.p99_ms, s.mean_ms);
    }
    let ratio = |a: Stats, b: Stats| (a.p50_ms / b.p50_ms, a.p99_ms / b.p99_ms);
    let ratios = [
        ("handler / bare", ratio(of(Series::Handler), of(Series::Bare))),
        ("quota-local / bare", ratio(of(Series::Local), of(Series::Bare))),
        ("keyed handler / bare keyed", ratio(of(Series::HandlerKeyed), of(Series::BareKeyed))),
        ("keyed quota-local / bare keyed", ratio(of(Series::LocalKeyed), of(Series::BareKeyed))),
    ];
    println!();
    for (label, (p50, p99)) in ratios {
        println!("{label:<40}{p50:>9.2}x{p99:>9.2}x");
    }
    let series: serde_json::Map<String, serde_json::Value> =
        SERIES.iter().map(|s| (s.label().to_string(), json!(of(*s)))).collect();
    let ratios: serde_json::Map<String, serde_json::Value> =
        ratios.iter().map(|(l, (p50, p99))| (l.to_string(), json!({ "p50": p50, "p99": p99 }))).collect();
    save("latency", &json!({ "rounds": rounds, "series": series, "ratios": ratios }))
}
