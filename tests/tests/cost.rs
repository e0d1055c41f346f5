//! What each call costs in DynamoDB requests, counted on the wire.

use std::collections::BTreeMap;

use quota_tests::{APP, TestApp, json};

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn steady_state_calls_cost_one_request() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("cost", json!({ "plan": "basic" })).await;
    app.consume("cost", "conversations", 1).await;
    app.requests.take();

    app.consume("cost", "conversations", 1).await;
    assert_eq!(app.requests.take_counts(), counts(&[("UpdateItem", 1)]), "consume");

    app.usage("cost").await;
    assert_eq!(app.requests.take_counts(), counts(&[("Query", 1)]), "org usage read");

    app.get("/v1/orgs/cost/usage/conversations/check", &APP).await;
    assert_eq!(app.requests.take_counts(), counts(&[("GetItem", 1)]), "check");

    app.post("/v1/orgs/cost/check", json!({ "resources": { "users": 1, "contacts": 1 } }), &APP).await;
    assert_eq!(app.requests.take_counts(), counts(&[("Query", 1)]), "multi check");

    app.release("cost", "contacts", 1).await;
    // Releasing from 0 clamps: one failed conditional write, one clamp.
    assert_eq!(app.requests.take_counts(), counts(&[("UpdateItem", 2)]), "release below zero");

    // Refusals cost the same single write: the old item comes back with the failure.
    app.org("cost", json!({ "limits": { "projects": 0 } })).await;
    app.requests.take();
    assert_eq!(app.consume("cost", "projects", 1).await.status, 429);
    assert_eq!(app.requests.take_counts(), counts(&[("UpdateItem", 1)]), "refused consume");
}

#[tokio::test]
async fn idempotent_consume_is_one_transaction_and_one_read() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("cost2", json!({ "plan": "basic" })).await;
    app.requests.take();
    app.consume_with_key("cost2", "conversations", 1, "a").await;
    // DynamoDB transactions return no item values, so the answer's usage
    // needs one consistent GetItem after the transaction.
    assert_eq!(app.requests.take_counts(), counts(&[("GetItem", 1), ("TransactWriteItems", 1)]));
}
