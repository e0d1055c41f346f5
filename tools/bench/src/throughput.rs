//! Throughput at 1, 16 and 64 concurrent clients: consumes per second
//! through the handler and through quota-local, beside the bare
//! conditional `UpdateItem` (the floor of one consume), for one hot org
//! (every client on one counter) and for many orgs (one counter per
//! client). Then, at each level, clients consume a `hard` resource until
//! they are refused: exactly its limit must be admitted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::json;

use crate::{Bench, save};

const LEVELS: [usize; 3] = [1, 16, 64];
/// The hard limit each admission round races against.
const HARD_LIMIT: usize = 300;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Bare,
    Handler,
    Local,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Bare => "bare UpdateItem",
            Path::Handler => "handler",
            Path::Local => "quota-local",
        }
    }
}

fn consume_path(org: &str) -> String {
    format!("/v1/orgs/{org}/usage/conversations/consume")
}

async fn one(bench: &Bench, path: Path, org: &str) -> anyhow::Result<u16> {
    match path {
        Path::Bare => {
            let key = HashMap::from([
                ("pk".to_string(), AttributeValue::S(format!("ORG#bare-{org}"))),
                ("sk".to_string(), AttributeValue::S("STATE#USAGE#conversations".into())),
            ]);
            let n = |v: i64| AttributeValue::N(v.to_string());
            bench
                .bare
                .update_item()
                .table_name(&bench.table)
                .set_key(Some(key))
                .update_expression("ADD used :amt, rem :neg")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(pend) OR pend > :now) \
                     AND (enf = :soft OR attribute_not_exists(lim) OR rem >= :amt)",
                )
                .expression_attribute_values(":amt", n(1))
                .expression_attribute_values(":neg", n(-1))
                .expression_attribute_values(":now", n(chrono::Utc::now().timestamp()))
                .expression_attribute_values(":soft", AttributeValue::S("soft".into()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await?;
            Ok(200)
        }
        Path::Handler => {
            let claims = HashMap::from([
                ("sub".to_string(), "bench".to_string()),
                ("scope".to_string(), "quota:write".to_string()),
            ]);
            let method = hyper::Method::POST;
            let event = quota_local::apigw_event(
                &method,
                &consume_path(org),
                "",
                &Default::default(),
                br#"{"amount":1}"#,
                Some(&claims),
            );
            let request = quota_local::request_from_event(&event).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            Ok(quota_local::dispatch(&bench.deps, request).await.status().as_u16())
        }
        Path::Local => Ok(bench.api.call("POST", &consume_path(org), r#"{"amount":1}"#, None).await?.0),
    }
}

/// Runs `clients` loops for `seconds`; client `i` works on `orgs[i % len]`.
async fn measure(
    bench: &Arc<Bench>,
    path: Path,
    clients: usize,
    orgs: &Arc<Vec<String>>,
    seconds: u64,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (bench, orgs, done, stop) = (Arc::clone(bench), Arc::clone(orgs), Arc::clone(&done), Arc::clone(&stop));
            tokio::spawn(async move {
                let org = &orgs[i % orgs.len()];
                while !stop.load(Ordering::Relaxed) {
                    let status = one(&bench, path, org).await?;
                    ensure!(status == 200, "{} answered {status}", path.label());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// `clients` race through quota-local for a hard limit of [`HARD_LIMIT`]:
/// the units admitted.
async fn admitted(bench: &Arc<Bench>, clients: usize, org: &str) -> anyhow::Result<usize> {
    bench.api.org(org, &format!(r#"{{"plan":"free","limits":{{"conversations":{HARD_LIMIT}}}}}"#)).await?;
    let admitted = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (bench, admitted, org) = (Arc::clone(bench), Arc::clone(&admitted), org.to_string());
            tokio::spawn(async move {
                loop {
                    match bench.api.call("POST", &consume_path(&org), r#"{"amount":1}"#, None).await?.0 {
                        200 => admitted.fetch_add(1, Ordering::Relaxed),
                        429 => return Ok::<_, anyhow::Error>(()),
                        other => anyhow::bail!("a hard-limit consume answered {other}"),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(admitted.load(Ordering::Relaxed))
}

pub async fn run(seconds: u64) -> anyhow::Result<()> {
    let bench = Arc::new(Bench::start("throughput").await?);
    let many: Vec<String> = (0..64).map(|i| format!("many-{i:02}")).collect();
    let hot = vec!["hot".to_string()];
    for org in many.iter().chain(&hot) {
        bench.api.org(org, r#"{"plan":"pro","limits":{"conversations":1000000000000}}"#).await?;
        let (status, _) = bench.api.call("POST", &consume_path(org), r#"{"amount":1}"#, None).await?;
        ensure!(status == 200, "the first consume for {org} answered {status}");
        // The bare path's counter: a copy of the service's.
        let key = |pk: String| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk)),
                ("sk".to_string(), AttributeValue::S("STATE#USAGE#conversations".into())),
            ])
        };
        let item =
            bench.bare.get_item().table_name(&bench.table).set_key(Some(key(format!("ORG#{org}")))).send().await?;
        let mut copy = item.item.context("the counter item")?;
        copy.insert("pk".into(), AttributeValue::S(format!("ORG#bare-{org}")));
        bench.bare.put_item().table_name(&bench.table).set_item(Some(copy)).send().await?;
    }
    let (many, hot) = (Arc::new(many), Arc::new(hot));

    println!("Throughput: consumes per second, {seconds} s per cell");
    println!("{:<14}{:<16}{:>10}{:>10}{:>10}", "orgs", "path", "1", "16", "64");
    let mut rows = Vec::new();
    for (label, orgs) in [("one hot org", &hot), ("many orgs", &many)] {
        for path in [Path::Bare, Path::Handler, Path::Local] {
            let mut cells = Vec::new();
            for clients in LEVELS {
                cells.push(measure(&bench, path, clients, orgs, seconds).await?);
            }
            println!("{label:<14}{:<16}{:>10.0}{:>10.0}{:>10.0}", path.label(), cells[0], cells[1], cells[2]);
            rows.push(json!({ "orgs": label, "path": path.label(), "clients": LEVELS, "per_second": cells }));
        }
    }
    println!();
    println!("Hard limit of {HARD_LIMIT}, clients consuming through quota-local until refused:");
    let mut admission = Vec::new();
    for clients in LEVELS {
        let got = admitted(&bench, clients, &format!("hard-{clients}")).await?;
        println!("  {clients:>3} clients: {got} admitted");
        ensure!(got == HARD_LIMIT, "{clients} clients got {got} units of a hard limit of {HARD_LIMIT}");
        admission.push(json!({ "clients": clients, "admitted": got }));
    }
    save("throughput", &json!({ "seconds": seconds, "rows": rows, "hard_limit": HARD_LIMIT, "admission": admission }))
}
