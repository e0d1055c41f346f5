//! Many simultaneous consumes against one hard limit: exactly the limit is
//! admitted, whatever the interleaving.

use std::sync::Arc;

use futures::future::join_all;
use quota_tests::{TestApp, json};

const LIMIT: i64 = 100;
const CALLERS: usize = 250;

/// One burst at a time: each test here sends hundreds of requests at once,
/// and DynamoDB Local on two cores answering several such bursts together
/// is slower than the service's time bounds allow (it would answer 503).
static ONE_BURST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn statuses(app: &Arc<TestApp>, org: &'static str, keyed: bool) -> (usize, usize, Vec<u16>) {
    let tasks = (0..CALLERS).map(|i| {
        let app = Arc::clone(app);
        tokio::spawn(async move {
            if keyed {
                // As a client does: a 503 is retried with the same key after
                // its Retry-After (a burst of transactions on one counter
                // can exhaust the store budget, on DynamoDB too). The retry
                // must then count once, whether or not the first attempt
                // was applied.
                let key = format!("req-{i}");
                let mut attempts = 0;
                loop {
                    let reply = app.consume_with_key(org, "conversations", 1, &key).await;
                    attempts += 1;
                    if reply.status != 503 || attempts == 5 {
                        return reply.status;
                    }
                    assert_eq!(reply.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            } else {
                app.consume(org, "conversations", 1).await.status
            }
        })
    });
    let all: Vec<u16> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let admitted = all.iter().filter(|s| **s == 200).count();
    let refused = all.iter().filter(|s| **s == 429).count();
    (admitted, refused, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn exactly_the_limit_is_admitted() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("race", json!({ "plan": "free" })).await;
    let (admitted, refused, all) = statuses(&app, "race", false).await;
    assert_eq!(admitted, LIMIT as usize, "statuses: {all:?}");
    assert_eq!(refused, CALLERS - LIMIT as usize, "every other call is a clean 429: {all:?}");
    assert_eq!(app.resource_usage("race", "conversations").await["used"], LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn exactly_the_limit_is_admitted_with_idempotency_keys() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("race-keys", json!({ "plan": "free" })).await;
    let (admitted, refused, all) = statuses(&app, "race-keys", true).await;
    assert_eq!(admitted, LIMIT as usize, "statuses: {all:?}");
    assert_eq!(refused, CALLERS - LIMIT as usize, "statuses: {all:?}");
    assert_eq!(app.resource_usage("race-keys", "conversations").await["used"], LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_key_sent_many_times_at_once_counts_once() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("same-key", json!({ "plan": "basic" })).await;
    let tasks = (0..40).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.consume_with_key("same-key", "conversations", 5, "once").await })
    });
    let replies: Vec<_> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let used = app.resource_usage("same-key", "conversations").await["used"].clone();
    let fresh = replies.iter().filter(|r| r.headers.get("idempotent-replayed").is_none()).count();
    assert_eq!((fresh, used), (1, serde_json::json!(5)), "one call recorded, the rest replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_rollover_closes_the_old_period_once() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-31T23:59:00Z").await);
    app.org("race-roll", json!({ "plan": "basic" })).await;
    app.consume("race-roll", "conversations", 130).await;
    app.set_now("2026-04-01T00:00:00Z");
    let tasks = (0..50).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.consume("race-roll", "conversations", 1).await.status })
    });
    let all: Vec<u16> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    assert!(all.iter().all(|s| *s == 200), "{all:?}");
    assert_eq!(app.resource_usage("race-roll", "conversations").await["used"], 50);
    let closed = closed_periods(&app, "race-roll").await;
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0], (130, 30));
}

/// `(used, overage)` of every closed-period record of an org.
async fn closed_periods(app: &TestApp, org: &str) -> Vec<(i64, i64)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = app
        .deps
        .store
        .client()
        .query()
        .table_name(app.deps.store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("ORG#{org}")))
        .expression_attribute_values(":c", AttributeValue::S("CLOSED#".into()))
        .send()
        .await
        .expect("query");
    let n = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| -> i64 {
        item[k].as_n().unwrap().parse().unwrap()
    };
    out.items().iter().map(|i| (n(i, "used"), n(i, "overage"))).collect()
}
