//! Admin writes whose answer was lost after they committed (the proxy
//! forwards every transaction and drops its answer, until the request's
//! budget runs out: `503 OUTCOME_UNKNOWN`). The event an admin write owes
//! is written with it, so it is published by whichever request finds it:
//! the retry (with the same `Idempotency-Key`, which answers as the first
//! would have), a later admin write, or the daily job. Each exactly once
//! here, and never with figures the retry made up.

use lambda_http::http::Method;
use quota_tests::{ADMIN, Fault, Reply, Rule, TestApp, Value, json};

/// Every transaction is applied and its answer lost: the request's store
/// budget runs out and it answers that its outcome is unknown.
fn lose_transactions(app: &TestApp) {
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::LoseResponse));
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>, key: &str) -> Reply {
    let body = body.map(|b| b.to_string());
    app.send(method, path, body.as_deref(), &[("idempotency-key", key)], &ADMIN).await
}

fn published(app: &TestApp, org: &str, kind: &str) -> Vec<Value> {
    app.events(org).into_iter().filter(|(k, _)| k == kind).map(|(_, d)| d).collect()
}

async fn audit(app: &TestApp, org: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/admin/orgs/{org}/audit"), &ADMIN).await;
    r.body["entries"].as_array().cloned().unwrap_or_default()
}

fn outcome_unknown(r: &Reply) {
    assert_eq!((r.status, r.code()), (503, Some("OUTCOME_UNKNOWN")), "{}", r.body);
}

#[tokio::test]
async fn a_grant_whose_answer_was_lost_is_published_by_its_retry_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("lost-grant", json!({ "plan": "free" })).await;
    let body = json!({ "resource": "conversations", "amount": 50, "reason": "boost" });
    lose_transactions(&app);
    let first = admin(&app, Method::POST, "/v1/admin/orgs/lost-grant/grants", Some(body.clone()), "g-1").await;
    outcome_unknown(&first);
    app.faults().dynamodb.clear();
    assert!(published(&app, "lost-grant", "GrantAdded").is_empty(), "not yet: its request stopped");

    let retry = admin(&app, Method::POST, "/v1/admin/orgs/lost-grant/grants", Some(body), "g-1").await;
    assert_eq!((retry.status, retry.body["usage"]["limit"].as_i64()), (201, Some(150)), "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let added = published(&app, "lost-grant", "GrantAdded");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(
        (added[0]["grantId"].clone(), added[0]["limit"].clone()),
        (retry.body["grant"]["id"].clone(), json!(150))
    );
    assert!(added[0]["eventId"].as_str().is_some_and(|id| id.starts_with("evt_")));
    // Nothing left to publish: another admin write publishes nothing more.
    app.org("lost-grant", json!({ "locale": "da" })).await;
    assert_eq!(published(&app, "lost-grant", "GrantAdded").len(), 1);
}

#[tokio::test]
async fn a_plan_change_and_a_creation_whose_answers_were_lost_answer_their_retries_as_the_first() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    lose_transactions(&app);
    let create = json!({ "plan": "free" });
    outcome_unknown(&admin(&app, Method::PUT, "/v1/orgs/lost-org", Some(create.clone()), "o-1").await);
    app.faults().dynamodb.clear();
    let retry = admin(&app, Method::PUT, "/v1/orgs/lost-org", Some(create), "o-1").await;
    assert_eq!(retry.status, 201, "a creation, answered as one: {}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");

    lose_transactions(&app);
    let change = json!({ "plan": "growth" });
    outcome_unknown(&admin(&app, Method::PUT, "/v1/orgs/lost-org", Some(change.clone()), "o-2").await);
    app.faults().dynamodb.clear();
    let retry = admin(&app, Method::PUT, "/v1/orgs/lost-org", Some(change), "o-2").await;
    assert_eq!((retry.status, retry.body["plan"].as_str()), (200, Some("growth")), "{}", retry.body);
    let changed = published(&app, "lost-org", "PlanChanged");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!((changed[0]["from"].as_str(), changed[0]["to"].as_str()), (Some("free"), Some("growth")));
    // Another request under the same key is another request.
    let reused = admin(&app, Method::PUT, "/v1/orgs/lost-org", Some(json!({ "plan": "pro" })), "o-2").await;
    assert_eq!((reused.status, reused.code()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{}", reused.body);
}

#[tokio::test]
async fn a_reset_whose_answer_was_lost_is_audited_and_published_once_with_what_it_reset() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("lost-reset", json!({ "plan": "free" })).await;
    assert_eq!(app.consume("lost-reset", "conversations", 85).await.status, 200);
    let body = json!({ "resource": "conversations", "reason": "support ticket" });
    lose_transactions(&app);
    outcome_unknown(&admin(&app, Method::POST, "/v1/admin/orgs/lost-reset/reset", Some(body.clone()), "r-1").await);
    app.faults().dynamodb.clear();
    let retry = admin(&app, Method::POST, "/v1/admin/orgs/lost-reset/reset", Some(body), "r-1").await;
    assert_eq!((retry.status, retry.body["reset"][0]["used"].as_i64()), (200, Some(0)), "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let resets: Vec<Value> = audit(&app, "lost-reset").await.into_iter().filter(|e| e["action"] == "reset").collect();
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0]["before"], 85);
    let events = published(&app, "lost-reset", "QuotaReset");
    assert_eq!((events.len(), events[0]["before"].as_i64()), (1, Some(85)), "{events:?}");
}

#[tokio::test]
async fn a_revoke_whose_answer_was_lost_answers_its_retry_and_is_published_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("lost-revoke", json!({ "plan": "free" })).await;
    let g = app.grant("lost-revoke", json!({ "resource": "users", "amount": 3, "reason": "r" })).await;
    let id = g.body["grant"]["id"].as_str().unwrap().to_string();
    lose_transactions(&app);
    let path = format!("/v1/admin/orgs/lost-revoke/grants/{id}");
    outcome_unknown(&app.send(Method::DELETE, &path, None, &[], &ADMIN).await);
    app.faults().dynamodb.clear();
    let retry = app.send(Method::DELETE, &path, None, &[], &ADMIN).await;
    assert_eq!((retry.status, retry.body["revoked"]["id"].as_str()), (200, Some(id.as_str())), "{}", retry.body);
    assert_eq!(retry.body["usage"]["limit"], 2);
    let revoked = published(&app, "lost-revoke", "GrantRevoked");
    assert_eq!((revoked.len(), revoked[0]["limit"].as_i64()), (1, Some(2)), "{revoked:?}");
    let entries: Vec<Value> =
        audit(&app, "lost-revoke").await.into_iter().filter(|e| e["action"] == "grant_revoked").collect();
    assert_eq!(entries.len(), 1);
}

/// Review defect: a keyed grant retried after the grant was revoked
/// answered `503` (with `Retry-After: 1`) for the key's 24 hours.
#[tokio::test]
async fn a_keyed_grant_retried_after_its_revoke_answers_the_grant() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("gone-grant", json!({ "plan": "free" })).await;
    let body = json!({ "resource": "users", "amount": 3, "reason": "r" });
    let first = admin(&app, Method::POST, "/v1/admin/orgs/gone-grant/grants", Some(body.clone()), "k").await;
    assert_eq!(first.status, 201);
    assert_eq!(app.revoke("gone-grant", first.body["grant"]["id"].as_str().unwrap()).await.status, 200);
    let retry = admin(&app, Method::POST, "/v1/admin/orgs/gone-grant/grants", Some(body), "k").await;
    assert_eq!(
        (retry.status, retry.body["grant"]["id"].clone()),
        (201, first.body["grant"]["id"].clone()),
        "{}",
        retry.body
    );
    assert_eq!(retry.body["usage"]["limit"], 2, "the grant stays revoked");
}

/// Events no request published (nobody retried) go out with the daily job.
#[tokio::test]
async fn the_daily_job_publishes_what_no_request_did() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    app.org("orphan", json!({ "plan": "free" })).await;
    lose_transactions(&app);
    outcome_unknown(&app.put("/v1/orgs/orphan", json!({ "plan": "basic" }), &ADMIN).await);
    app.faults().dynamodb.clear();
    assert!(published(&app, "orphan", "PlanChanged").is_empty());
    let summary = app.run_job().await;
    assert_eq!(summary["outboxEvents"], 1, "{summary}");
    assert_eq!(published(&app, "orphan", "PlanChanged").len(), 1);
    app.run_job().await;
    assert_eq!(published(&app, "orphan", "PlanChanged").len(), 1, "once");
}

/// Review defect: creating an org with limit or feature overrides audited
/// only `org_created {plan}`.
#[tokio::test]
async fn a_creation_audits_the_overrides_it_starts_with() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("overrides", json!({ "plan": "basic", "limits": { "users": 9 }, "features": { "sso": true } })).await;
    let entries = audit(&app, "overrides").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["action"], "org_created");
    assert_eq!(entries[0]["after"], json!({ "plan": "basic", "limits": { "users": 9 }, "features": { "sso": true } }));
}
