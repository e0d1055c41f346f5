//! `Idempotency-Key`: the same key on the same org and resource within 24 h
//! counts once; a different request under the same key is refused.

use chrono::Duration;
use lambda_http::http::Method;
use quota_tests::{APP, TestApp, json};

#[tokio::test]
async fn a_retry_counts_once_and_answers_like_the_first() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("idem", json!({ "plan": "free" })).await;
    let first = app.consume_with_key("idem", "conversations", 3, "order-1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.used(), 3);
    assert!(first.headers.get("idempotent-replayed").is_none());
    for _ in 0..3 {
        let again = app.consume_with_key("idem", "conversations", 3, "order-1").await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["allowed"], true);
        assert_eq!(again.used(), 3);
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    // The key is per resource: the same key elsewhere is a new request.
    assert_eq!(app.consume_with_key("idem", "contacts", 3, "order-1").await.used(), 3);
    assert_eq!(app.resource_usage("idem", "conversations").await["used"], 3);
}

#[tokio::test]
async fn the_same_key_for_a_different_request_is_refused() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("idem2", json!({ "plan": "free" })).await;
    assert_eq!(app.consume_with_key("idem2", "conversations", 1, "k").await.status, 200);
    let reused = app.consume_with_key("idem2", "conversations", 2, "k").await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.code(), Some("IDEMPOTENCY_KEY_REUSED"));
    assert_eq!(app.resource_usage("idem2", "conversations").await["used"], 1);
}

#[tokio::test]
async fn a_key_is_forgotten_after_24_hours() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("idem3", json!({ "plan": "free" })).await;
    app.consume_with_key("idem3", "conversations", 1, "k").await;
    app.advance(Duration::hours(23));
    assert_eq!(app.consume_with_key("idem3", "conversations", 1, "k").await.used(), 1);
    app.advance(Duration::hours(1));
    // Expired (TTL deletion may lag; the condition treats it as gone).
    assert_eq!(app.consume_with_key("idem3", "conversations", 1, "k").await.used(), 2);
}

#[tokio::test]
async fn a_refused_consume_is_not_remembered() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("idem4", json!({ "plan": "free", "limits": { "projects": 1 } })).await;
    app.consume("idem4", "projects", 1).await;
    assert_eq!(app.consume_with_key("idem4", "projects", 1, "p2").await.status, 429);
    app.release("idem4", "projects", 1).await;
    let retried = app.consume_with_key("idem4", "projects", 1, "p2").await;
    assert_eq!(retried.status, 200, "nothing was recorded, so the retry is a new attempt");
    assert_eq!(retried.used(), 1);
}

#[tokio::test]
async fn bad_keys_are_rejected() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("idem5", json!({})).await;
    let long = "k".repeat(256);
    for key in [long.as_str(), "has space"] {
        let r = app.consume_with_key("idem5", "conversations", 1, key).await;
        assert_eq!(r.status, 400, "{key:?}");
        assert_eq!(r.code(), Some("INVALID_REQUEST"));
    }
}

/// A retry whose first attempt took the last units: its transaction is
/// cancelled on the key's record and on the counter (now at the limit,
/// and another key's consume since has replaced the counter's guard).
/// DynamoDB names each item's failure ("if no error occurred for the
/// associated item", its code is null: the API reference's
/// CancellationReason), so the record's is there: the retry is its
/// replay, never a 429 for units it counted.
#[tokio::test]
async fn a_retry_at_the_limit_is_its_replay() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("edge", json!({ "plan": "free" })).await;
    let first = app.consume_with_key("edge", "conversations", 99, "first").await;
    assert_eq!((first.status, first.used()), (200, 99));
    assert_eq!(app.consume_with_key("edge", "conversations", 1, "second").await.used(), 100);
    let again = app.consume_with_key("edge", "conversations", 99, "first").await;
    assert_eq!((again.status, again.used()), (200, 100), "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let reused = app.consume_with_key("edge", "conversations", 5, "first").await;
    assert_eq!((reused.status, reused.code()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{}", reused.body);
    let new = app.consume_with_key("edge", "conversations", 1, "third").await;
    assert_eq!((new.status, &new.body["reason"]), (429, &json!("quota_exceeded")), "{}", new.body);
    assert_eq!(app.resource_usage("edge", "conversations").await["used"], 100);
}

/// The same for a keyed reserve: its retry answers the reservation it made.
#[tokio::test]
async fn a_reserve_retried_at_the_limit_answers_its_reservation() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("hold", json!({ "plan": "free" })).await;
    let reserve = async |key: &str, amount: i64| {
        let body = json!({ "amount": amount }).to_string();
        let path = "/v1/orgs/hold/usage/conversations/reserve";
        app.send(Method::POST, path, Some(&body), &[("idempotency-key", key)], &APP).await
    };
    let first = reserve("job", 99).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(app.consume_with_key("hold", "conversations", 1, "other").await.used(), 1);
    let again = reserve("job", 99).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["reservationId"], first.body["reservationId"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let usage = app.resource_usage("hold", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(1), Some(99)), "held once");
}
