//! Grants: boosts and promo units on top of the plan's limit, audited and
//! published, honoured to the instant they expire.

use lambda_http::http::Method;
use quota_tests::{ADMIN, APP, Auth, TestApp, json};

/// The audit entries of `org` with `action`, newest first.
async fn audit(app: &TestApp, org: &str, action: &str) -> Vec<quota_tests::Value> {
    let reply = app.get(&format!("/v1/admin/orgs/{org}/audit"), &ADMIN).await;
    reply.body["entries"].as_array().unwrap().iter().filter(|e| e["action"] == action).cloned().collect()
}

#[tokio::test]
async fn a_grant_lifts_the_limit_and_unblocks_a_free_org_at_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("boost", json!({ "plan": "free" })).await;
    assert_eq!(app.consume("boost", "conversations", 100).await.status, 200);
    assert_eq!(app.consume("boost", "conversations", 1).await.status, 429);

    let g = app
        .grant(
            "boost",
            json!({ "resource": "conversations", "amount": 50, "expiresAt": "2026-03-20T12:00:00Z", "reason": "Spring promo" }),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    let id = g.body["grant"]["id"].as_str().unwrap().to_string();
    assert_eq!(g.body["grant"]["amount"], 50);
    assert_eq!(g.body["grant"]["expiresAt"], "2026-03-20T12:00:00Z");
    assert_eq!(g.body["grant"]["createdBy"], "admin@ops");
    assert_eq!((g.body["usage"]["limit"].as_i64(), g.body["usage"]["planLimit"].as_i64()), (Some(150), Some(100)));

    assert_eq!(app.consume("boost", "conversations", 1).await.status, 200, "unblocked at once");
    let usage = app.usage("boost").await.body;
    assert_eq!(usage["blocked"]["blocked"], false);
    let conv = usage["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "conversations").unwrap();
    assert_eq!(
        (conv["limit"].as_i64(), conv["planLimit"].as_i64(), conv["remaining"].as_i64()),
        (Some(150), Some(100), Some(49))
    );
    assert_eq!(conv["grants"].as_array().unwrap().len(), 1);
    assert_eq!(conv["grants"][0]["id"], id.as_str());

    let added = audit(&app, "boost", "grant_added").await;
    assert_eq!(added.len(), 1);
    assert_eq!((added[0]["actor"].as_str(), added[0]["reason"].as_str()), (Some("admin@ops"), Some("Spring promo")));
    assert_eq!(added[0]["after"]["id"], id.as_str());
    let events: Vec<_> = app.events("boost").into_iter().filter(|(k, _)| k == "GrantAdded").collect();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].1["grantId"].as_str(), events[0].1["limit"].as_i64()), (Some(id.as_str()), Some(150)));
}

#[tokio::test]
async fn a_grant_stops_counting_at_its_expiry_with_no_job_run() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("expiry", json!({ "plan": "free" })).await;
    let g = app
        .grant(
            "expiry",
            json!({ "resource": "conversations", "amount": 50, "expiresAt": "2026-03-20T12:00:00Z", "reason": "r" }),
        )
        .await;
    assert_eq!(g.status, 201);
    assert_eq!(app.consume("expiry", "conversations", 120).await.status, 200);

    app.set_now("2026-03-20T11:59:59Z");
    assert_eq!(app.consume("expiry", "conversations", 1).await.status, 200, "a second before: still granted");
    app.set_now("2026-03-20T12:00:00Z");
    let usage = app.resource_usage("expiry", "conversations").await;
    assert_eq!(
        (usage["limit"].as_i64(), usage["grants"].as_array().map(Vec::len)),
        (Some(100), Some(0)),
        "read at the instant"
    );
    let refused = app.consume("expiry", "conversations", 1).await;
    assert_eq!((refused.status, refused.body["reason"].as_str()), (429, Some("quota_exceeded")), "{}", refused.body);
    assert_eq!(refused.body["usage"]["limit"], 100);

    let stored = app.stored_counter("expiry", "conversations").await;
    assert_eq!((stored.grants.len(), stored.limit), (0, Some(100)), "taken off by that consume");
    assert_eq!(app.consume("expiry", "conversations", 1).await.status, 429);
    let expired: Vec<_> = app.events("expiry").into_iter().filter(|(k, _)| k == "GrantExpired").collect();
    assert_eq!(expired.len(), 1, "published once: {expired:?}");
    assert_eq!(expired[0].1["expiresAt"], "2026-03-20T12:00:00Z");
    assert_eq!(expired[0].1["limit"], 100);
}

#[tokio::test]
async fn the_default_expiry_is_the_period_end_and_billing_counts_the_grant() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("bill", json!({ "plan": "basic" })).await;
    let g = app.grant("bill", json!({ "resource": "conversations", "amount": 50, "reason": "goodwill" })).await;
    assert_eq!(g.body["grant"]["expiresAt"], "2026-04-01T00:00:00Z", "{}", g.body);
    assert_eq!(app.consume("bill", "conversations", 170).await.status, 200);

    app.set_now("2026-04-01T00:15:00Z");
    app.run_job().await;
    let closed: Vec<_> = app.events("bill").into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let conv = closed[0].1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "conversations").unwrap();
    assert_eq!(
        (conv["used"].as_i64(), conv["limit"].as_i64(), conv["overage"].as_i64()),
        (Some(170), Some(150), Some(20))
    );
    let usage = app.resource_usage("bill", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["limit"].as_i64()), (Some(0), Some(100)), "April is back to the plan");
    let expired: Vec<_> = app.events("bill").into_iter().filter(|(k, _)| k == "GrantExpired").collect();
    assert_eq!(expired.len(), 1, "the job took it off: {expired:?}");
    // A grant on a total resource defaults to the same period end.
    let g = app.grant("bill", json!({ "resource": "users", "amount": 1, "reason": "r" })).await;
    assert_eq!(g.body["grant"]["expiresAt"], "2026-05-01T00:00:00Z");
}

#[tokio::test]
async fn grants_add_up_and_a_revoked_one_is_gone() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("sum", json!({ "plan": "free" })).await;
    let a = app.grant("sum", json!({ "resource": "users", "amount": 3, "reason": "a" })).await;
    let b = app.grant("sum", json!({ "resource": "users", "amount": 5, "reason": "b" })).await;
    assert_eq!(b.body["usage"]["limit"], 10, "2 + 3 + 5: {}", b.body);
    assert_eq!(app.consume("sum", "users", 10).await.status, 200);

    let id = a.body["grant"]["id"].as_str().unwrap();
    let r = app.revoke("sum", id).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.body["revoked"]["id"].as_str(), r.body["usage"]["limit"].as_i64()), (Some(id), Some(7)));
    assert_eq!(app.consume("sum", "users", 1).await.status, 429, "10 used of 7");
    // A retry of the revoke (its answer lost, say) answers the first one.
    let again = app.revoke("sum", id).await;
    assert_eq!((again.status, again.body["revoked"]["id"].as_str()), (200, Some(id)), "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let revoked = audit(&app, "sum", "grant_revoked").await;
    assert_eq!((revoked.len(), revoked[0]["reason"].as_str()), (1, Some("a")));
    let events: Vec<_> = app.events("sum").into_iter().filter(|(k, _)| k == "GrantRevoked").collect();
    assert_eq!((events.len(), events[0].1["limit"].as_i64()), (1, Some(7)));
}

#[tokio::test]
async fn thresholds_follow_the_effective_limit() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("thr");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    app.grant(&org, json!({ "resource": "conversations", "amount": 100, "reason": "launch" })).await;
    assert_eq!(app.consume(&org, "conversations", 150).await.status, 200);
    assert!(app.emails(&org).await.is_empty(), "75 % of 200: no email");
    assert_eq!(app.consume(&org, "conversations", 10).await.status, 200);
    let crossed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "QuotaThresholdCrossed").collect();
    assert_eq!(crossed.len(), 1, "{crossed:?}");
    assert_eq!((crossed[0].1["threshold"].as_u64(), crossed[0].1["limit"].as_i64()), (Some(80), Some(200)));
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn a_plan_change_keeps_the_grants() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("plan", json!({ "plan": "free" })).await;
    app.grant("plan", json!({ "resource": "conversations", "amount": 50, "reason": "r" })).await;
    app.consume("plan", "conversations", 10).await;
    app.org("plan", json!({ "plan": "growth" })).await;
    let usage = app.resource_usage("plan", "conversations").await;
    assert_eq!((usage["limit"].as_i64(), usage["planLimit"].as_i64()), (Some(350), Some(300)));
    app.org("plan", json!({ "limits": { "conversations": 20 } })).await;
    assert_eq!(app.resource_usage("plan", "conversations").await["limit"], 70);
    app.org("plan", json!({ "plan": "free", "limits": { "conversations": null } })).await;
    let usage = app.resource_usage("plan", "conversations").await;
    assert_eq!((usage["limit"].as_i64(), usage["remaining"].as_i64()), (Some(150), Some(140)));
    // Unlimited on the plan: the grant waits, and counts again under a limit.
    app.org("plan", json!({ "plan": "pro" })).await;
    app.grant("plan", json!({ "resource": "leads", "amount": 7, "reason": "r" })).await;
    assert_eq!(app.resource_usage("plan", "leads").await["limit"], json!(null));
    app.org("plan", json!({ "plan": "growth" })).await;
    assert_eq!(app.resource_usage("plan", "leads").await["limit"], 10_007);
}

#[tokio::test]
async fn every_bad_grant_has_its_code() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("badg", json!({ "plan": "free" })).await;
    for (body, why) in [
        (json!({ "resource": "users", "amount": 0, "reason": "r" }), "amount"),
        (json!({ "resource": "users", "amount": 1 }), "reason"),
        (json!({ "resource": "users", "amount": 1, "reason": "r", "expiresAt": "2026-03-10T12:00:00Z" }), "past"),
        (json!({ "resource": "users", "amount": 1, "reason": "r", "expiresAt": "next week" }), "date"),
        (json!({ "amount": 1, "reason": "r" }), "resource"),
    ] {
        let r = app.grant("badg", body).await;
        assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{why}: {}", r.body);
    }
    let r = app.grant("badg", json!({ "resource": "widgets", "amount": 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (404, Some("UNKNOWN_RESOURCE")));
    let r = app.grant("ghost", json!({ "resource": "users", "amount": 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (404, Some("ORG_NOT_FOUND")));
    let path = "/v1/admin/orgs/badg/grants";
    let body = json!({ "resource": "users", "amount": 1, "reason": "r" }).to_string();
    let r = app.send(Method::POST, path, Some(&body), &[], &APP).await;
    assert_eq!((r.status, r.code()), (403, Some("FORBIDDEN")), "apps do not grant themselves units");
    let r = app.send(Method::POST, path, Some(&body), &[], &Auth::None).await;
    assert_eq!(r.status, 401);
    for id in ["nope", "grt_000000000000000000000000"] {
        let r = app.revoke("badg", id).await;
        assert_eq!((r.status, r.code()), (404, Some("GRANT_NOT_FOUND")), "{id}");
    }
    let r = app.revoke("ghost", "grt_000000000000000000000000").await;
    assert_eq!((r.status, r.code()), (404, Some("ORG_NOT_FOUND")));

    let max = quota_shared::domain::grant::MAX_GRANTS;
    for _ in 0..max {
        assert_eq!(app.grant("badg", json!({ "resource": "tasks", "amount": 1, "reason": "r" })).await.status, 201);
    }
    let r = app.grant("badg", json!({ "resource": "tasks", "amount": 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (409, Some("TOO_MANY_GRANTS")));
    assert_eq!(app.resource_usage("badg", "tasks").await["limit"], 250 + max as i64);
}

#[tokio::test]
async fn an_expired_grant_cannot_be_revoked_and_reports_its_expiry_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("late", json!({ "plan": "free" })).await;
    let g = app
        .grant("late", json!({ "resource": "users", "amount": 1, "expiresAt": "2026-03-11T00:00:00Z", "reason": "r" }))
        .await;
    app.set_now("2026-03-12T00:00:00Z");
    let r = app.revoke("late", g.body["grant"]["id"].as_str().unwrap()).await;
    assert_eq!((r.status, r.code()), (404, Some("GRANT_NOT_FOUND")));
    app.run_job().await;
    let kinds: Vec<String> =
        app.events("late").into_iter().map(|(k, _)| k).filter(|k| k.starts_with("Grant")).collect();
    assert_eq!(kinds, ["GrantAdded", "GrantExpired"]);
}

fn count(app: &TestApp, org: &str, kind: &str) -> usize {
    app.events(org).into_iter().filter(|(k, _)| k == kind).count()
}

/// Review defect: a revoke after the period had ended, before its rollover,
/// took the grant off first: the period was billed without it.
#[tokio::test]
async fn a_grant_revoked_after_its_period_ended_still_counts_in_that_periods_bill() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("laterevoke", json!({ "plan": "basic" })).await;
    let body = json!({ "resource": "conversations", "amount": 50, "expiresAt": "2026-05-15T00:00:00Z", "reason": "r" });
    let g = app.grant("laterevoke", body).await;
    assert_eq!(app.consume("laterevoke", "conversations", 140).await.status, 200);
    app.set_now("2026-04-01T00:05:00Z");
    assert_eq!(app.revoke("laterevoke", g.body["grant"]["id"].as_str().unwrap()).await.status, 200);
    app.set_now("2026-04-01T00:15:00Z");
    app.run_job().await;
    let closed: Vec<_> = app.events("laterevoke").into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    let conv = closed[0].1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "conversations").unwrap();
    let figures = (conv["used"].as_i64(), conv["limit"].as_i64(), conv["overage"].as_i64());
    assert_eq!(figures, (Some(140), Some(150), Some(0)), "the grant held through all of March");
    assert_eq!(count(&app, "laterevoke", "QuotaExceeded"), 0, "{:?}", app.events("laterevoke"));
}

/// Review defect: grants a reserve took off were not reported when it then
/// answered 409 TOO_MANY_RESERVATIONS (and no later write could).
#[tokio::test]
async fn grant_expired_is_published_when_a_reserve_answers_too_many() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("toomany", json!({ "plan": "pro" })).await; // leads: unlimited
    let body = json!({ "resource": "leads", "amount": 5, "expiresAt": "2026-03-10T12:30:00Z", "reason": "r" });
    assert_eq!(app.grant("toomany", body).await.status, 201);
    for _ in 0..quota_shared::domain::reservation::MAX_OPEN {
        let r = app.reserve("toomany", "leads", json!({ "amount": 1, "ttlSeconds": 86_400 })).await;
        assert_eq!(r.status, 201);
    }
    app.set_now("2026-03-10T12:30:00Z");
    let r = app.reserve("toomany", "leads", json!({ "amount": 1 })).await;
    assert_eq!(r.code(), Some("TOO_MANY_RESERVATIONS"));
    assert!(app.stored_counter("toomany", "leads").await.grants.is_empty(), "taken off by that reserve");
    app.run_job().await;
    assert_eq!(count(&app, "toomany", "GrantExpired"), 1);
}

/// Review defect: as above, for a commit that found its own hold expired.
#[tokio::test]
async fn grant_expired_is_published_when_a_commit_finds_its_hold_expired() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("ce", json!({ "plan": "free" })).await;
    let body = json!({ "resource": "conversations", "amount": 10, "expiresAt": "2026-03-10T12:00:30Z", "reason": "r" });
    app.grant("ce", body).await;
    let r = app.reserve("ce", "conversations", json!({ "amount": 5, "ttlSeconds": 60 })).await;
    app.set_now("2026-03-10T12:01:00Z");
    let c = app.commit("ce", r.body["reservationId"].as_str().unwrap(), None).await;
    assert_eq!(c.code(), Some("RESERVATION_EXPIRED"));
    assert!(app.stored_counter("ce", "conversations").await.grants.is_empty());
    app.run_job().await;
    assert_eq!(count(&app, "ce", "GrantExpired"), 1);
}

/// Review defect: a grant's reason and author rode on the counter item every
/// consume writes (and is billed by the KB for), and showed to apps.
#[tokio::test]
async fn a_grants_text_stays_off_the_counter_and_out_of_usage() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("text", json!({ "plan": "free" })).await;
    let reason = "r".repeat(quota_shared::domain::grant::MAX_REASON);
    let g = app.grant("text", json!({ "resource": "users", "amount": 1, "reason": reason })).await;
    assert_eq!(
        (g.body["grant"]["reason"].as_str(), g.body["grant"]["createdBy"].as_str()),
        (Some(reason.as_str()), Some("admin@ops"))
    );
    let used = app.consume("text", "users", 1).await;
    assert_eq!(
        used.body["usage"]["grants"][0].as_object().map(|g| g.len()),
        Some(3),
        "id, amount, expiresAt: {}",
        used.body
    );
    let revoked = app.revoke("text", g.body["grant"]["id"].as_str().unwrap()).await;
    assert_eq!(revoked.body["revoked"]["reason"].as_str(), Some(reason.as_str()), "read back for the revoke");
    let events: Vec<_> = app.events("text").into_iter().filter(|(k, _)| k == "GrantRevoked").collect();
    assert_eq!(events[0].1["reason"].as_str(), Some(reason.as_str()));
}

#[tokio::test]
async fn a_grant_cannot_lift_a_limit_past_the_largest_count() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("huge", json!({ "plan": "free" })).await;
    let max = quota_shared::domain::MAX_COUNT;
    let r = app.grant("huge", json!({ "resource": "users", "amount": max - 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{}", r.body);
    assert_eq!(app.grant("huge", json!({ "resource": "users", "amount": max - 2, "reason": "r" })).await.status, 201);
}

/// Second review: a grant add that swept an expired grant and was then
/// refused (too large, too many) dropped its GrantExpired.
#[tokio::test]
async fn a_refused_grant_still_reports_the_grants_it_found_expired() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("refgr", json!({ "plan": "free" })).await;
    let body = json!({ "resource": "users", "amount": 10, "expiresAt": "2026-03-10T12:00:30Z", "reason": "r" });
    assert_eq!(app.grant("refgr", body).await.status, 201);
    app.set_now("2026-03-10T12:01:00Z");
    let max = quota_shared::domain::MAX_COUNT;
    let r = app.grant("refgr", json!({ "resource": "users", "amount": max - 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")));
    app.run_job().await;
    assert_eq!(count(&app, "refgr", "GrantExpired"), 1);
}

/// Second review: a plan or override change could lift a limit with grants
/// past 2^53 - 1, and so could grants kept while the plan was unlimited.
#[tokio::test]
async fn no_change_lifts_an_effective_limit_past_the_largest_count() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let max = quota_shared::domain::MAX_COUNT;
    app.org("cap1", json!({ "plan": "free" })).await;
    assert_eq!(app.grant("cap1", json!({ "resource": "users", "amount": 50, "reason": "r" })).await.status, 201);
    let r = app.put("/v1/orgs/cap1", json!({ "limits": { "users": max } }), &ADMIN).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{}", r.body);
    assert_eq!(app.resource_usage("cap1", "users").await["limit"], 52);

    app.org("cap2", json!({ "plan": "pro" })).await; // leads: unlimited
    assert_eq!(app.grant("cap2", json!({ "resource": "leads", "amount": max, "reason": "r" })).await.status, 201);
    let r = app.grant("cap2", json!({ "resource": "leads", "amount": 1, "reason": "r" })).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "grants kept for an unlimited plan count too");
    let r = app.put("/v1/orgs/cap2", json!({ "limits": { "leads": 100 } }), &ADMIN).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{}", r.body);
    assert_eq!(app.resource_usage("cap2", "leads").await["limit"], json!(null));
}

/// An admin's retry (after a 503, say) with the same `Idempotency-Key` adds
/// the grant once, and answers with the first one.
#[tokio::test]
async fn a_keyed_grant_is_added_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("keyg", json!({ "plan": "free" })).await;
    let send = |key: &'static str, amount: i64| {
        let body = json!({ "resource": "users", "amount": amount, "reason": "ticket 7" }).to_string();
        let app = &app;
        async move {
            app.send(Method::POST, "/v1/admin/orgs/keyg/grants", Some(&body), &[("idempotency-key", key)], &ADMIN).await
        }
    };
    let (first, second) = tokio::join!(send("t-7", 5), send("t-7", 5));
    assert_eq!((first.status, second.status), (201, 201), "{} {}", first.body, second.body);
    assert_eq!(first.body["grant"], second.body["grant"], "the same grant");
    let replayed = [&first, &second].iter().filter(|r| r.headers.contains_key("idempotent-replayed")).count();
    assert_eq!(replayed, 1);
    assert_eq!(app.resource_usage("keyg", "users").await["limit"], 7, "2 + 5, once");
    assert_eq!(count(&app, "keyg", "GrantAdded"), 1);
    let again = send("t-7", 5).await;
    assert_eq!((again.status, again.body["grant"]["id"].clone()), (201, first.body["grant"]["id"].clone()));
    let other = send("t-7", 6).await;
    assert_eq!((other.status, other.code()), (422, Some("IDEMPOTENCY_KEY_REUSED")));
    assert_eq!(app.resource_usage("keyg", "users").await["limit"], 7);
}

/// Review defect: release, set and reset answered (and set emailed) with
/// grants that had expired still counted: "80 % of 200" while the org was at
/// 170 % of its real limit, and blocked. Each answers on the limit in force,
/// and takes the expired grant off (reporting `GrantExpired` once).
#[tokio::test]
async fn release_set_and_reset_answer_on_the_limit_in_force_not_an_expired_grant() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("lapsed-answers");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    for resource in ["conversations", "contacts"] {
        let body = json!({ "resource": resource, "amount": 100, "expiresAt": "2026-03-10T13:00:00Z", "reason": "r" });
        assert_eq!(app.grant(&org, body).await.status, 201);
    }
    assert_eq!(app.consume(&org, "contacts", 300).await.status, 200, "250 of the plan, 50 of the grant");
    app.set_now("2026-03-10T13:00:00Z");

    // Release: 300 - 10 = 290 contacts, of the plan's 250.
    let released = app.release(&org, "contacts", 10).await;
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.body["usage"]["limit"], 250, "no expired grant in the limit: {}", released.body);
    assert_eq!(released.body["usage"]["grants"], json!([]));
    assert_eq!(released.body["usage"]["blocked"], true);

    // Set: 170 of 100 conversations: the 100 % email, not "80 % of 200".
    let set = app.put(&format!("/v1/orgs/{org}/usage/conversations"), json!({ "value": 170 }), &APP).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        (
            set.body["usage"]["limit"].clone(),
            set.body["usage"]["percentage"].clone(),
            set.body["usage"]["status"].clone()
        ),
        (json!(100), json!(170.0), json!("exceeded")),
        "{}",
        set.body
    );
    let subjects: Vec<String> =
        app.emails(&org).await.into_iter().map(|e| e.subject).filter(|s| s.contains("conversations")).collect();
    assert_eq!(subjects, ["Monthly quota reached: conversations are paused"]);

    // Reset: back to 0 of 100.
    let reset = app
        .post(&format!("/v1/admin/orgs/{org}/reset"), json!({ "resource": "conversations", "reason": "r" }), &ADMIN)
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        (reset.body["reset"][0]["used"].clone(), reset.body["reset"][0]["limit"].clone()),
        (json!(0), json!(100))
    );

    let expired = app.events(&org).into_iter().filter(|(k, _)| k == "GrantExpired").count();
    assert_eq!(expired, 2, "each expired grant reported once");
}

/// Review defect: a commit that crossed a threshold left its email to the
/// daily job while an expired grant was still on the counter (the claim is
/// pinned to the limit the table holds). The commit brings the counter up
/// to date first: the email goes out at once, on the limit in force.
#[tokio::test]
async fn a_commit_past_an_expired_grant_sends_its_threshold_email_at_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("lapsed-commit");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let body =
        json!({ "resource": "conversations", "amount": 100, "expiresAt": "2026-03-10T13:00:00Z", "reason": "r" });
    assert_eq!(app.grant(&org, body).await.status, 201);
    let reserved = app.reserve(&org, "conversations", json!({ "amount": 85, "ttlSeconds": 7200 })).await;
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    let id = reserved.body["reservationId"].as_str().unwrap().to_string();
    app.set_now("2026-03-10T13:30:00Z");
    let c = app.commit(&org, &id, None).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!((c.body["usage"]["used"].clone(), c.body["usage"]["limit"].clone()), (json!(85), json!(100)));
    let subjects: Vec<String> = app.emails(&org).await.into_iter().map(|e| e.subject).collect();
    assert_eq!(subjects, ["You have used 80% of your monthly conversations"], "sent by the commit itself");
}
