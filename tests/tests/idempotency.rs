//! `Idempotency-Key`: the same key on the same org and resource within 24 h
//! counts once; a different request under the same key is refused.

use chrono::Duration;
use quota_tests::{TestApp, json};

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
