//! The store under injected faults: a proxy between the service and
//! DynamoDB Local answers with DynamoDB's own errors, loses responses after
//! the write committed, stalls, or refuses connections. Every guarantee must
//! hold: exact counts, the contract's answers in bounded time, and recovery
//! at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use quota_tests::{Fault, Rule, TestApp, json};

#[tokio::test]
async fn a_transaction_conflict_on_a_plain_write_is_retried() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("conflict", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::TransactionConflict).times(2));
    let r = app.consume("conflict", "conversations", 3).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.used(), 3);
    assert_eq!(app.faults().dynamodb.injected()["TransactionConflict"], 2);
    assert_eq!(app.resource_usage("conflict", "conversations").await["used"], 3, "counted once");
}

#[tokio::test]
async fn transactions_cancelled_by_a_conflict_are_sent_again() {
    let app = TestApp::with_faults("2026-03-20T12:00:00Z").await;
    app.org("txn", json!({ "plan": "basic" })).await;
    let proxy = &app.faults().dynamodb;

    proxy.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict).times(2));
    let r = app.consume_with_key("txn", "conversations", 2, "k1").await;
    assert_eq!((r.status, r.used()), (200, 2), "keyed consume: {}", r.body);

    proxy.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict).times(2));
    assert_eq!(app.put("/v1/orgs/txn", json!({ "plan": "growth" }), &quota_tests::ADMIN).await.status, 200);
    proxy.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict).times(2));
    let set = app.put("/v1/orgs/txn/usage/conversations", json!({ "value": 7 }), &quota_tests::APP).await;
    assert_eq!(set.status, 200, "set usage: {}", set.body);
    assert_eq!(proxy.injected()["TransactionCanceledByConflict"], 6);

    // The period closes; each transaction of the job meets a conflict first
    // (rollover, period-close claim, period-close mark).
    app.set_now("2026-04-01T00:15:00Z");
    proxy.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict).every(2));
    let summary = app.run_job().await;
    assert_eq!(summary["periodsClosed"], 1, "{summary}");
    proxy.clear();
    // A day later (every lease long expired), nothing is emitted again.
    app.set_now("2026-04-02T00:15:00Z");
    assert_eq!(app.run_job().await["periodsClosed"], 0);
    let closed: Vec<_> = app.events("txn").into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1, "one billing event: {closed:?}");
    assert_eq!(closed[0].1["resources"][0]["used"], 7);
}

/// Throttling says the write was not applied: it is retried. A 500 says
/// nothing of the kind (DynamoDB: "an error occurred on the server side";
/// the write may have been carried out): a plain write that met one is not
/// sent again and its answer says its outcome is unknown, while a
/// transaction is sent again under its `ClientRequestToken`, which makes
/// the repeat change nothing.
/// The proxy models DynamoDB's transactions as DynamoDB answers them: a
/// transaction sent again under a token already forwarded is DynamoDB's to
/// answer (success, when the first was applied: tokens are idempotent), never
/// a made-up cancellation. Without this, a slow first attempt (applied, its
/// answer late) and an injected conflict on its resend looked like "not
/// applied", and a grant was added twice or a keyed consume answered 429
/// for a unit it had counted: a DynamoDB that does not exist.
#[tokio::test]
async fn a_transaction_resent_under_its_token_is_answered_by_dynamodb() {
    use aws_sdk_dynamodb::types::{AttributeValue::S, Put, TransactWriteItem};
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    let store = &app.deps.store;
    let put = || {
        let put = Put::builder()
            .table_name(store.table())
            .item("pk", S("ORG#tokens".into()))
            .item("sk", S("X".into()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    let send = |token: &'static str| {
        store.client().transact_write_items().transact_items(put()).client_request_token(token).send()
    };
    send("token-1").await.expect("applied");
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict));
    send("token-1").await.expect("a repeat of an applied token succeeds, as on DynamoDB");
    let fresh = send("token-2").await.expect_err("a new token meets the injected conflict");
    assert!(format!("{fresh:?}").contains("TransactionConflict"), "{fresh:?}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_count_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("throttle", json!({ "plan": "basic" })).await;
    let proxy = &app.faults().dynamodb;
    proxy.inject(Rule::on("UpdateItem", Fault::Throttling).times(1));
    proxy.inject(Rule::on("UpdateItem", Fault::ProvisionedThroughputExceeded).times(1));
    let r = app.consume("throttle", "conversations", 1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(proxy.injected().values().sum::<usize>(), 2);
    assert_eq!(app.resource_usage("throttle", "conversations").await["used"], 1);

    proxy.inject(Rule::on("UpdateItem", Fault::InternalError).times(1));
    let r = app.consume("throttle", "conversations", 1).await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    assert_eq!(r.headers["retry-after"], "3", "the first attempt may still be under way");
    assert_eq!(proxy.injected()["InternalError"], 1, "sent once, not again");

    proxy.inject(Rule::on("TransactWriteItems", Fault::InternalError).times(2));
    let r = app.consume_with_key("throttle", "conversations", 2, "after-500").await;
    assert_eq!((r.status, r.used()), (200, 3), "keyed, sent again with its token: {}", r.body);
    assert_eq!(proxy.injected()["InternalError"], 3);
}

#[tokio::test]
async fn errors_that_outlast_the_retries_answer_503_and_record_nothing() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("busy", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::Throttling));
    let r = app.consume("busy", "conversations", 1).await;
    assert_eq!((r.status, r.code()), (503, Some("STORE_UNAVAILABLE")), "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    app.faults().dynamodb.clear();
    assert_eq!(app.resource_usage("busy", "conversations").await["used"], 0);
}

/// The bound a stalled store is answered within: the request's store
/// budget (2.8 s), and a second for a loaded machine to get to it.
const ANSWERED_WITHIN: Duration = Duration::from_millis(3800);

/// Bounded here too, so that a regression fails instead of hanging.
async fn bounded<T>(request: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), request).await.expect("answered within 10 s")
}

#[tokio::test]
async fn a_stalled_store_answers_503_within_3_seconds_and_recovers_at_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("stall", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.inject(Rule::all(Fault::Stall));
    for path in ["/v1/orgs/stall/usage", "/v1/orgs/stall/usage/conversations/check"] {
        let started = Instant::now();
        let r = bounded(app.get(path, &quota_tests::APP)).await;
        let took = started.elapsed();
        assert_eq!((r.status, r.code()), (503, Some("STORE_UNAVAILABLE")), "{path}: {}", r.body);
        assert!(took < ANSWERED_WITHIN, "{path} took {took:?}");
    }
    // The consume's write was sent and never answered: it may have been
    // applied (here the proxy held it back; a DynamoDB that stalls may
    // have carried it out), and the answer says so.
    let started = Instant::now();
    let r = bounded(app.consume("stall", "conversations", 1)).await;
    let took = started.elapsed();
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    assert_eq!(r.headers["retry-after"], "3", "the first attempt may still be under way");
    assert!(took < ANSWERED_WITHIN, "consume took {took:?}");

    app.faults().dynamodb.clear();
    // The very next request succeeds: nothing waits for the store to be
    // "declared" healthy again.
    let r = app.consume("stall", "conversations", 1).await;
    assert_eq!(r.status, 200, "recovered at once: {}", r.body);
    // The stalled consume never reached DynamoDB Local: one unit.
    assert_eq!(r.used(), 1);
}

#[tokio::test]
async fn refused_connections_answer_503_and_recovery_is_immediate() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("refused", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.refuse();
    // The open connections were dropped too: a request sent on one of them
    // is reset, and a write that was reset may have been applied, for all
    // its sender can tell. A read retries, and leaves no such connection.
    let r = app.get("/v1/orgs/refused/usage", &quota_tests::APP).await;
    assert_eq!((r.status, r.code()), (503, Some("STORE_UNAVAILABLE")), "{}", r.body);
    // No connection can be made: the consume certainly recorded nothing.
    let started = Instant::now();
    let r = app.consume("refused", "conversations", 1).await;
    assert_eq!((r.status, r.code()), (503, Some("STORE_UNAVAILABLE")), "{}", r.body);
    assert!(started.elapsed() < ANSWERED_WITHIN, "{:?}", started.elapsed());
    app.faults().dynamodb.restore().await;
    let r = app.consume("refused", "conversations", 1).await;
    assert_eq!((r.status, r.used()), (200, 1), "{}", r.body);
}

/// 16 clients, each sending its own keys, a quarter of DynamoDB's responses
/// lost after the write committed. A client retries its key until it gets
/// an answer that is not 503, as a client following `Retry-After` would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_responses_with_idempotency_keys_count_every_key_exactly_once() {
    lost_responses(16, 12).await;
}

/// The long form, run by hand: `scripts/test -p quota-tests --test faults --
/// --ignored lost_responses_under_load` (`LOAD_CLIENTS`, `LOAD_KEYS` set the
/// size; 64 × 100 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load form, run by hand"]
async fn lost_responses_under_load() {
    let size = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    lost_responses(size("LOAD_CLIENTS", 64), size("LOAD_KEYS", 100)).await;
}

async fn lost_responses(clients: usize, keys_each: usize) {
    let app = Arc::new(TestApp::with_faults("2026-03-10T12:00:00Z").await);
    app.org("lossy", json!({ "plan": "pro", "limits": { "conversations": 100_000 } })).await;
    app.faults().dynamodb.inject(Rule::all(Fault::LoseResponse).rate(0.25));
    let tasks = (0..clients).map(|c| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..keys_each {
                let key = format!("client-{c}-key-{k}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let r = app.consume_with_key("lossy", "conversations", 1, &key).await;
                    statuses.push(r.status);
                    if r.status != 503 || attempts == 20 {
                        assert_eq!(r.status, 200, "{key}: {}", r.body);
                        break;
                    }
                }
            }
            statuses
        })
    });
    let statuses: Vec<u16> = join_all(tasks).await.into_iter().flat_map(|r| r.expect("client")).collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "nothing but 200 and 503: {statuses:?}");
    let lost = app.faults().dynamodb.injected().get("LoseResponse").copied().unwrap_or(0);
    assert!(lost > 20, "the fault really was injected ({lost} responses lost)");
    app.faults().dynamodb.clear();
    let used = app.resource_usage("lossy", "conversations").await["used"].as_i64().unwrap();
    assert_eq!(used, (clients * keys_each) as i64, "every key counted exactly once ({lost} responses lost)");
    let retried = statuses.iter().filter(|s| **s == 503).count();
    println!("{clients} clients x {keys_each} keys: {lost} responses lost, {retried} answers were 503 and retried");
}

/// Real DynamoDB ends a Query page at 1 MB; every read of the service
/// follows the pages to the end (or to the limit it asked for). One item
/// per page here.
#[tokio::test]
async fn every_read_follows_dynamodbs_pages() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    let org = app.unique("pages");
    app.org(&org, json!({ "plan": "growth" })).await;
    app.advance(chrono::Duration::seconds(1));
    app.org(&org, json!({ "limits": { "users": 3 } })).await;
    app.advance(chrono::Duration::seconds(1));
    app.org(&org, json!({ "plan": "pro" })).await;
    for used in [5, 7] {
        app.consume(&org, "conversations", used).await;
        app.run_job().await;
        app.advance(chrono::Duration::days(1));
    }
    app.faults().dynamodb.inject(Rule::on("Query", Fault::SmallPages(1)));

    let resources = app.usage(&org).await.body["resources"].as_array().cloned().unwrap();
    let names: Vec<&str> = resources.iter().map(|r| r["resource"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 10, "every counter, one per page: {names:?}");
    let field =
        |resource: &str, name: &str| resources.iter().find(|r| r["resource"] == resource).unwrap()[name].clone();
    assert_eq!((field("users", "limit"), field("conversations", "used")), (json!(3), json!(12)));

    let audit = app.get(&format!("/v1/admin/orgs/{org}/audit?limit=2"), &quota_tests::ADMIN).await.body;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["plan_changed", "limits_changed"], "the newest two");

    let history = app.get(&format!("/v1/orgs/{org}/usage/conversations/history?days=7"), &quota_tests::APP).await;
    let days: Vec<(&str, i64)> = history.body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), d["used"].as_i64().unwrap()))
        .collect();
    assert_eq!(days, [("2026-03-10", 5), ("2026-03-11", 12)]);
    assert!(app.faults().dynamodb.injected()["SmallPages"] >= 10 + 2 + 2);
}
