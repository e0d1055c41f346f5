//! The seed scenarios end to end, through the handlers, against DynamoDB Local.

use chrono::Duration;
use quota_tests::{APP, TestApp, json};

#[tokio::test]
async fn free_org_is_refused_at_conversation_101() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("free-101", json!({ "plan": "free" })).await;
    for i in 1..=100 {
        let r = app.consume("free-101", "conversations", 1).await;
        assert_eq!(r.status, 200, "consume {i}: {}", r.body);
        assert_eq!(r.used(), i);
    }
    let refused = app.consume("free-101", "conversations", 1).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["allowed"], false);
    assert_eq!(refused.body["reason"], "quota_exceeded");
    assert_eq!(refused.body["message"], "Monthly quota reached. Upgrade to continue.");
    assert_eq!(refused.used(), 100, "a refused consume records nothing");
    assert_eq!(refused.body["usage"]["blocked"], true);

    let usage = app.usage("free-101").await.body;
    assert_eq!(usage["blocked"]["blocked"], true);
    assert_eq!(usage["blocked"]["reason"], "quota_exceeded");
    assert_eq!(usage["blocked"]["resources"], json!(["conversations"]));
    assert_eq!(usage["atRisk"]["exceeded"], json!(["conversations"]));
    let conv = app.resource_usage("free-101", "conversations").await;
    assert_eq!(conv["used"], 100);
    assert_eq!(conv["remaining"], 0);
    assert_eq!(conv["status"], "exceeded");
    assert_eq!(conv["overage"], 0);

    let check = app.get("/v1/orgs/free-101/usage/conversations/check", &APP).await;
    assert_eq!(check.status, 200, "check always answers 200");
    assert_eq!(check.body["allowed"], false);
    assert_eq!(check.body["reason"], "quota_exceeded");
}

#[tokio::test]
async fn free_org_is_refused_once_its_trial_has_ended() {
    let app = TestApp::new("2026-03-01T12:00:00Z").await;
    let created = app.org("trial", json!({ "plan": "free", "locale": "da" })).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["trialEndsAt"], "2026-03-31T12:00:00Z", "30 days after creation");
    assert_eq!(app.consume("trial", "conversations", 1).await.status, 200);

    app.set_now("2026-03-31T11:59:59Z");
    assert_eq!(app.consume("trial", "conversations", 1).await.status, 200, "last second of the trial");
    app.set_now("2026-03-31T12:00:00Z");
    let refused = app.consume("trial", "conversations", 1).await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.body["reason"], "trial_expired");
    assert_eq!(refused.body["message"], "Gratis prøveperiode udløbet. Opgrader for at fortsætte.");
    assert_eq!(refused.used(), 2);
    // Every resource is blocked, not just conversations.
    assert_eq!(app.consume("trial", "contacts", 1).await.status, 402);
    let usage = app.usage("trial").await.body;
    assert_eq!(usage["trial"], json!({ "endsAt": "2026-03-31T12:00:00Z", "expired": true }));
    assert_eq!(usage["blocked"]["reason"], "trial_expired");

    // Upgrading lifts the block at once.
    app.org("trial", json!({ "plan": "basic" })).await;
    assert_eq!(app.consume("trial", "conversations", 1).await.status, 200);
    assert_eq!(app.usage("trial").await.body["trial"], json!(null));
}

#[tokio::test]
async fn paid_org_continues_past_its_limit_with_overage() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("paid", json!({ "plan": "basic" })).await;
    for _ in 0..12 {
        let r = app.consume("paid", "conversations", 10).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let conv = app.resource_usage("paid", "conversations").await;
    assert_eq!(conv["used"], 120);
    assert_eq!(conv["limit"], 100);
    assert_eq!(conv["overage"], 20);
    assert_eq!(conv["remaining"], 0);
    assert_eq!(conv["percentage"], 120.0);
    assert_eq!(conv["status"], "exceeded");
    assert_eq!(conv["blocked"], false);
    assert_eq!(conv["enforcement"], "soft");
    // CRM resources stay hard on paid plans.
    assert_eq!(app.resource_usage("paid", "users").await["enforcement"], "hard");
}

#[tokio::test]
async fn contacts_are_blocked_at_their_limit_and_freed_by_release() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("crm", json!({ "plan": "free", "limits": { "contacts": 5 } })).await;
    assert_eq!(app.consume("crm", "contacts", 5).await.status, 200);
    let refused = app.consume("crm", "contacts", 1).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["message"], "Limit for contacts reached. Upgrade to add more.");

    let released = app.release("crm", "contacts", 2).await;
    assert_eq!(released.status, 200);
    assert_eq!(released.used(), 3);
    assert_eq!(app.consume("crm", "contacts", 2).await.status, 200);
    assert_eq!(app.consume("crm", "contacts", 1).await.status, 429);

    // Release never goes below 0.
    let released = app.release("crm", "contacts", 50).await;
    assert_eq!(released.status, 200);
    assert_eq!(released.used(), 0);
    assert_eq!(released.body["usage"]["remaining"], 5);
    assert_eq!(app.consume("crm", "contacts", 5).await.status, 200);
}

#[tokio::test]
async fn month_rolls_over_at_the_anchor_in_the_orgs_time_zone() {
    // Anchor 31 in Copenhagen: the period that holds 10 Feb 2026 runs from
    // 31 Jan 00:00 CET (30 Jan 23:00Z) to 28 Feb 00:00 CET (27 Feb 23:00Z).
    let app = TestApp::new("2026-02-10T12:00:00Z").await;
    app.org("roll", json!({ "plan": "free", "anchorDay": 31, "timezone": "Europe/Copenhagen" })).await;
    app.org("roll", json!({ "trialEndsAt": "2027-01-01T00:00:00Z" })).await;
    assert_eq!(app.consume("roll", "conversations", 100).await.status, 200);
    assert_eq!(app.consume("roll", "contacts", 7).await.status, 200);
    let usage = app.usage("roll").await.body;
    assert_eq!(usage["period"]["start"], "2026-01-30T23:00:00Z");
    assert_eq!(usage["period"]["end"], "2026-02-27T23:00:00Z");
    assert_eq!(usage["period"]["nextReset"], "2026-02-27T23:00:00Z");

    app.set_now("2026-02-27T22:59:59Z");
    assert_eq!(app.consume("roll", "conversations", 1).await.status, 429, "still the old period");

    app.set_now("2026-02-27T23:00:00Z");
    // Read before any write: the new period already counts from 0.
    let conv = app.resource_usage("roll", "conversations").await;
    assert_eq!(conv["used"], 0);
    assert_eq!(conv["period"], json!({ "start": "2026-02-27T23:00:00Z", "end": "2026-03-30T22:00:00Z" }));
    let r = app.consume("roll", "conversations", 1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.used(), 1);
    // March's period ends 31 Mar 00:00 CEST, which is 30 Mar 22:00Z.
    assert_eq!(r.body["usage"]["period"]["end"], "2026-03-30T22:00:00Z");
    // `total` resources do not reset.
    assert_eq!(app.resource_usage("roll", "contacts").await["used"], 7);

    app.advance(Duration::days(40));
    assert_eq!(app.consume("roll", "conversations", 100).await.status, 200, "two periods later");
}

#[tokio::test]
async fn plan_change_and_override_bind_the_very_next_consume() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("upgrade", json!({ "plan": "free" })).await;
    assert_eq!(app.consume("upgrade", "conversations", 100).await.status, 200);
    assert_eq!(app.consume("upgrade", "conversations", 1).await.status, 429);

    app.org("upgrade", json!({ "plan": "growth" })).await;
    let r = app.consume("upgrade", "conversations", 1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["usage"]["limit"], 300);

    app.org("upgrade", json!({ "limits": { "users": 1 } })).await;
    assert_eq!(app.consume("upgrade", "users", 1).await.status, 200);
    assert_eq!(app.consume("upgrade", "users", 1).await.status, 429);
    app.org("upgrade", json!({ "limits": { "users": null } })).await;
    let r = app.consume("upgrade", "users", 1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["usage"]["limit"], 20, "back to the growth plan's limit");

    // Downgrade below current use: blocked, and the excess shows as overage.
    app.org("upgrade", json!({ "plan": "free" })).await;
    let r = app.consume("upgrade", "users", 1).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["usage"]["overage"], 0);
    assert_eq!(r.body["usage"]["used"], 2);
}

#[tokio::test]
async fn org_profile_round_trips_and_updates_keep_absent_fields() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let created = app
        .org(
            "profile",
            json!({
                "plan": "pro", "locale": "da", "timezone": "America/New_York", "anchorDay": 15,
                "contacts": { "owner": "o@acme.dk", "billing": "b@acme.dk", "admins": ["a@acme.dk"] }
            }),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["trialEndsAt"], json!(null), "paid plans have no trial");
    let updated = app.org("profile", json!({ "plan": "growth" })).await;
    assert_eq!(updated.status, 200);
    let got = app.get("/v1/orgs/profile", &APP).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["plan"], "growth");
    assert_eq!(got.body["locale"], "da");
    assert_eq!(got.body["timezone"], "America/New_York");
    assert_eq!(got.body["anchorDay"], 15);
    assert_eq!(got.body["contacts"]["admins"], json!(["a@acme.dk"]));
    assert_eq!(got.body["createdAt"], "2026-03-10T12:00:00Z");
    // The usage report names the zone its period's instants are midnights of.
    let report = app.get("/v1/orgs/profile/usage", &APP).await;
    assert_eq!(report.body["timezone"], "America/New_York");
    assert_eq!(report.body["period"]["start"], "2026-02-15T05:00:00Z");
    assert_eq!(report.body["period"]["end"], "2026-03-15T04:00:00Z");
}

#[tokio::test]
async fn multi_resource_check_records_nothing() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("multi", json!({ "plan": "free" })).await;
    app.consume("multi", "users", 2).await;
    let r = app.post("/v1/orgs/multi/check", json!({ "resources": { "users": 1, "contacts": 10 } }), &APP).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["decisions"]["users"]["allowed"], false);
    assert_eq!(r.body["decisions"]["users"]["reason"], "quota_exceeded");
    assert_eq!(r.body["decisions"]["contacts"]["allowed"], true);
    let r = app.post("/v1/orgs/multi/check", json!({ "resources": { "contacts": 10 } }), &APP).await;
    assert_eq!(r.body["allowed"], true);
    assert_eq!(app.resource_usage("multi", "contacts").await["used"], 0);
    // amount 0 asks "am I blocked right now?"
    let r = app.get("/v1/orgs/multi/usage/users/check?amount=0", &APP).await;
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["usage"]["blocked"], true);
}

#[tokio::test]
async fn extreme_limits_and_amounts_answer_without_panicking() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let max = 9_007_199_254_740_991i64;
    app.org("huge", json!({ "plan": "pro", "limits": { "conversations": max, "storage": 0 } })).await;
    let r = app.consume("huge", "conversations", max).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["usage"]["remaining"], 0);
    assert_eq!(r.body["usage"]["forecast"], json!(null));
    // Soft, but counts stop at 2^53 - 1, past which JSON clients lose exactness.
    let r = app.consume("huge", "conversations", 1).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (429, Some("quota_exceeded")), "{}", r.body);
    assert_eq!(r.used(), max, "nothing recorded");
    app.org("huge", json!({ "limits": { "leads": null } })).await;
    assert_eq!(app.consume("huge", "leads", max).await.status, 200, "unlimited, up to the cap");
    assert_eq!(app.consume("huge", "leads", 1).await.status, 429, "unlimited, past the cap");
    let r = app.consume("huge", "storage", 1).await;
    assert_eq!((r.status, r.body["usage"]["percentage"].clone()), (429, json!(100.0)), "a limit of 0");
    app.usage("huge").await;
}
