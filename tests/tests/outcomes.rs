//! Writes whose answer comes too late. The proxy forwards the write,
//! DynamoDB Local applies it, and the answer is held back past the SDK's
//! attempt timeout (1 s): the service cannot know whether the write was
//! applied. The rule: a write that may have been applied is never sent
//! again unless it recognises its own repeat (a transaction by its
//! `ClientRequestToken`, a reserve by its hold), so nothing counts twice; a
//! keyed request answers its outcome; an unkeyed one answers
//! `503 OUTCOME_UNKNOWN`, never a refusal of a unit it counted and never a
//! second count.

use std::time::Duration;

use quota_tests::{ADMIN, APP, Fault, Rule, TestApp, json};

/// Past the DynamoDB client's attempt timeout (1 s), within its operation
/// timeout (2.5 s): the SDK would have sent the write again.
const LATE: Duration = Duration::from_millis(1600);

fn late(operation: &str) -> Rule {
    Rule::on(operation, Fault::DelayResponse(LATE)).times(1)
}

#[tokio::test]
async fn an_unkeyed_consume_answered_late_counts_once_and_says_its_outcome_is_unknown() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("late", json!({ "plan": "basic" })).await;
    let proxy = &app.faults().dynamodb;
    proxy.inject(late("UpdateItem"));
    let before = proxy.forwarded().get("UpdateItem").copied().unwrap_or(0);
    let r = app.consume("late", "conversations", 1).await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    assert_eq!(r.headers["retry-after"], "3", "the first attempt may still be under way");
    assert_eq!(proxy.forwarded()["UpdateItem"] - before, 1, "the write was sent once");
    proxy.clear();
    assert_eq!(app.resource_usage("late", "conversations").await["used"], 1, "and applied once");
}

/// Without the rule, the SDK's second attempt met the limit the first had
/// reached, and the client heard 429 for a unit that was counted.
#[tokio::test]
async fn a_consume_answered_late_at_the_limit_is_never_refused_for_a_unit_it_counted() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("edge", json!({ "plan": "free" })).await;
    assert_eq!(app.consume("edge", "conversations", 99).await.status, 200);
    app.faults().dynamodb.inject(late("UpdateItem"));
    let r = app.consume("edge", "conversations", 1).await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    app.faults().dynamodb.clear();
    assert_eq!(app.resource_usage("edge", "conversations").await["used"], 100);
    assert_eq!(app.consume("edge", "conversations", 1).await.status, 429, "the limit, counted once");
}

#[tokio::test]
async fn a_keyed_consume_answered_late_counts_once_and_answers_its_outcome() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("keyed", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.inject(late("TransactWriteItems"));
    let r = app.consume_with_key("keyed", "conversations", 2, "late-key").await;
    assert_eq!((r.status, r.used()), (200, 2), "sent again under its token, applied once: {}", r.body);
    assert_eq!(app.faults().dynamodb.injected()["DelayResponse"], 1);
    let again = app.consume_with_key("keyed", "conversations", 2, "late-key").await;
    assert_eq!((again.status, again.used()), (200, 2), "a retry is a replay: {}", again.body);
    assert_eq!(app.resource_usage("keyed", "conversations").await["used"], 2);
}

#[tokio::test]
async fn a_release_answered_late_gives_back_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("give", json!({ "plan": "basic" })).await;
    assert_eq!(app.consume("give", "contacts", 5).await.status, 200);
    app.faults().dynamodb.inject(late("UpdateItem"));
    let r = app.release("give", "contacts", 2).await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    app.faults().dynamodb.clear();
    assert_eq!(app.resource_usage("give", "contacts").await["used"], 3);
}

/// A store that answers nothing at all: the request's budget cuts it short
/// while its write is on its way, so it cannot say "nothing recorded".
#[tokio::test]
async fn a_request_cut_short_while_its_write_is_under_way_says_its_outcome_is_unknown() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("cut", json!({ "plan": "basic" })).await;
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::Stall));
    let r = app.consume_with_key("cut", "conversations", 1, "cut-key").await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    app.faults().dynamodb.clear();
    let r = app.consume_with_key("cut", "conversations", 1, "cut-key").await;
    assert_eq!((r.status, r.used()), (200, 1), "the key tells: {}", r.body);
}

/// Nothing was sent when the store could not be reached before the write:
/// that, and only that, is `STORE_UNAVAILABLE`.
#[tokio::test]
async fn a_request_that_never_sent_its_write_says_nothing_was_recorded() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("unsent", json!({ "plan": "basic" })).await;
    // Setting a count reads it first (stalled here), then writes.
    app.faults().dynamodb.inject(Rule::on("Query", Fault::Stall));
    app.faults().dynamodb.inject(Rule::on("GetItem", Fault::Stall));
    let r = app.put("/v1/orgs/unsent/usage/contacts", json!({ "value": 3 }), &APP).await;
    assert_eq!((r.status, r.code()), (503, Some("STORE_UNAVAILABLE")), "{}", r.body);
    app.faults().dynamodb.clear();
    assert_eq!(app.resource_usage("unsent", "contacts").await["used"], 0);
}

/// Admin writes and the count's compare-and-set are transactions: sent
/// again under their token, they are applied once and answer as if on time.
#[tokio::test]
async fn transactions_answered_late_are_applied_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("txlate", json!({ "plan": "free" })).await;
    let proxy = &app.faults().dynamodb;

    app.advance(chrono::Duration::seconds(1));
    proxy.inject(late("TransactWriteItems"));
    let g = app.grant("txlate", json!({ "resource": "conversations", "amount": 25, "reason": "late" })).await;
    assert_eq!(g.status, 201, "{}", g.body);
    let usage = app.resource_usage("txlate", "conversations").await;
    assert_eq!((usage["limit"].clone(), usage["grants"].as_array().map(Vec::len)), (json!(125), Some(1)));

    app.advance(chrono::Duration::seconds(1));
    proxy.inject(late("TransactWriteItems"));
    let set = app.put("/v1/orgs/txlate/usage/contacts", json!({ "value": 4 }), &APP).await;
    assert_eq!((set.status, set.body["usage"]["used"].clone()), (200, json!(4)), "{}", set.body);

    app.advance(chrono::Duration::seconds(1));
    proxy.inject(late("TransactWriteItems"));
    let plan = app.put("/v1/orgs/txlate", json!({ "plan": "basic" }), &ADMIN).await;
    assert_eq!(plan.status, 200, "{}", plan.body);

    assert_eq!(proxy.injected()["DelayResponse"], 3);
    let audit = app.get("/v1/admin/orgs/txlate/audit", &ADMIN).await.body;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["plan_changed", "usage_set", "grant_added", "org_created"], "each once");
}

/// Review defect: the SDK reports only its last attempt's error. A
/// transaction whose first attempt was applied (its answer late) and whose
/// later ones were throttled answered `503 STORE_UNAVAILABLE`, "nothing was
/// recorded", and an operator's retry added the grant twice.
#[tokio::test]
async fn a_transaction_applied_then_throttled_says_its_outcome_is_unknown() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("applied-throttled", json!({ "plan": "free" })).await;
    let proxy = &app.faults().dynamodb;
    proxy.inject(late("TransactWriteItems"));
    proxy.inject(Rule::on("TransactWriteItems", Fault::Throttling));
    let g = app.grant("applied-throttled", json!({ "resource": "conversations", "amount": 25, "reason": "r" })).await;
    assert_eq!((g.status, g.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", g.body);
    proxy.clear();
    let usage = app.resource_usage("applied-throttled", "conversations").await;
    assert_eq!(usage["limit"], 125, "the first attempt was applied: {usage}");
}

/// The same for a reserve: its hold, applied, then its repeats throttled,
/// is an outcome unknown, never "nothing recorded".
#[tokio::test]
async fn a_reserve_applied_then_throttled_says_its_outcome_is_unknown() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("hold-throttled", json!({ "plan": "free" })).await;
    let proxy = &app.faults().dynamodb;
    proxy.inject(late("UpdateItem"));
    proxy.inject(Rule::on("UpdateItem", Fault::Throttling));
    let r = app.reserve("hold-throttled", "conversations", json!({ "amount": 30 })).await;
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
    proxy.clear();
    assert_eq!(app.resource_usage("hold-throttled", "conversations").await["held"], 30);
}
