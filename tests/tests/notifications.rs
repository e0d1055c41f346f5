//! Threshold emails through the local SES server: once per threshold per
//! period, to every contact once, in the org's locale; re-armed by a reset;
//! retried by the job after a failed send, and never sent twice.

use lambda_http::http::Method;
use quota_tests::{ADMIN, APP, TestApp, json};

fn subjects(emails: &[quota_tests::SentEmail]) -> Vec<String> {
    emails.iter().map(|e| e.subject.clone()).collect()
}

#[tokio::test]
async fn free_org_gets_80_and_100_once_each_in_danish() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-free");
    app.org(&org, json!({ "plan": "free", "locale": "da", "contacts": app.contacts(&org) })).await;

    assert_eq!(app.consume(&org, "conversations", 79).await.status, 200);
    assert!(app.emails(&org).await.is_empty(), "79 % sends nothing");

    assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
    let emails = app.emails(&org).await;
    assert_eq!(subjects(&emails), ["Du har brugt 80% af dine månedlige samtaler"]);
    let d = app.domain(&org);
    let mut to = emails[0].to.clone();
    to.sort();
    assert_eq!(to, [format!("admin@{d}"), format!("billing@{d}"), format!("owner@{d}")], "each contact once");
    assert!(emails[0].html.contains("#f59e0b"), "yellow bar at 80 %");

    assert_eq!(app.consume(&org, "conversations", 19).await.status, 200);
    assert_eq!(app.emails(&org).await.len(), 1, "nothing between thresholds");
    assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
    let emails = app.emails(&org).await;
    assert_eq!(subjects(&emails)[1], "Månedlig kvote nået");
    assert!(emails[1].html.contains("Opgrader for at fortsætte."));
    assert!(emails[1].html.contains("#dc2626"), "red bar at 100 %");

    assert_eq!(app.consume(&org, "conversations", 1).await.status, 429);
    let usage = app.usage(&org).await.body;
    assert_eq!(usage["notificationsSent"]["conversations"], json!([80, 100]));

    for _ in 0..2 {
        let summary = app.run_job().await;
        assert_eq!(summary["failures"], 0, "{summary}");
    }
    assert_eq!(app.emails(&org).await.len(), 2, "the job sends nothing more");

    let kinds: Vec<(String, i64)> = app
        .events(&org)
        .iter()
        .map(|(k, d)| (k.clone(), d["threshold"].as_i64().unwrap_or(d["used"].as_i64().unwrap_or(-1))))
        .collect();
    assert_eq!(
        kinds,
        [
            ("QuotaThresholdCrossed".to_string(), 80),
            ("QuotaThresholdCrossed".to_string(), 100),
            ("QuotaExceeded".to_string(), 100)
        ]
    );
}

#[tokio::test]
async fn paid_org_gets_80_100_110_120_once_each() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-paid");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    for step in [80, 20, 5, 5, 5, 5, 3] {
        assert_eq!(app.consume(&org, "conversations", step).await.status, 200);
    }
    // 80, 100, 105, 110, 115, 120, 123
    assert_eq!(
        subjects(&app.emails(&org).await),
        [
            "You have used 80% of your monthly conversations",
            "You have used 100% of your monthly conversations",
            "You have used 110% of your monthly conversations",
            "You have used 120% of your monthly conversations",
        ]
    );
    let paid = &app.emails(&org).await[1];
    assert!(paid.html.contains("Overage will be billed."), "paid wording, not blocked");
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 4);
}

#[tokio::test]
async fn a_jump_across_several_thresholds_sends_the_highest_only() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-jump");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    app.consume(&org, "conversations", 70).await;
    app.consume(&org, "conversations", 45).await;
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 110% of your monthly conversations"]);
    assert_eq!(app.usage(&org).await.body["notificationsSent"]["conversations"], json!([80, 100, 110]));
    app.consume(&org, "conversations", 4).await;
    assert_eq!(app.emails(&org).await.len(), 1, "119 %: nothing new");
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 1, "the lower thresholds count as sent");
}

#[tokio::test]
async fn reset_rearms_thresholds_and_is_audited() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-reset");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.consume(&org, "conversations", 85).await;
    assert_eq!(app.emails(&org).await.len(), 1);
    // Audit entries order by time; entries at one instant have no order.
    app.advance(chrono::Duration::seconds(1));

    let missing = app.post(&format!("/v1/admin/orgs/{org}/reset"), json!({}), &ADMIN).await;
    assert_eq!((missing.status, missing.code()), (400, Some("INVALID_REQUEST")), "reason is required");
    let blank = app.post(&format!("/v1/admin/orgs/{org}/reset"), json!({ "reason": "  " }), &ADMIN).await;
    assert_eq!(blank.status, 400);

    let reset = app
        .post(&format!("/v1/admin/orgs/{org}/reset"), json!({ "reason": "Support ticket 4711: bot traffic" }), &ADMIN)
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(reset.body["reset"][0]["resource"], "conversations");
    assert_eq!(reset.body["reset"][0]["used"], 0);
    let usage = app.usage(&org).await.body;
    assert_eq!(app.resource_usage(&org, "conversations").await["used"], 0);
    assert_eq!(usage["notificationsSent"], json!({}), "thresholds re-armed");

    app.consume(&org, "conversations", 80).await;
    assert_eq!(app.emails(&org).await.len(), 2, "80 % again after the reset");

    let audit = app.get(&format!("/v1/admin/orgs/{org}/audit"), &ADMIN).await;
    assert_eq!(audit.status, 200);
    let entries = audit.body["entries"].as_array().unwrap();
    let reset_entry = &entries[0];
    assert_eq!(reset_entry["action"], "reset");
    assert_eq!(reset_entry["actor"], "admin@ops");
    assert_eq!(reset_entry["reason"], "Support ticket 4711: bot traffic");
    assert_eq!(reset_entry["resource"], "conversations");
    assert_eq!((reset_entry["before"].clone(), reset_entry["after"].clone()), (json!(85), json!(0)));
    assert_eq!(entries.last().unwrap()["action"], "org_created");
    let reset_events: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "QuotaReset").collect();
    assert_eq!(reset_events.len(), 1);
    assert_eq!(reset_events[0].1["before"], 85);
}

#[tokio::test]
async fn audit_records_org_and_usage_changes_newest_first() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("audit");
    app.org(&org, json!({ "plan": "free" })).await;
    app.advance(chrono::Duration::seconds(1));
    app.org(&org, json!({ "plan": "growth" })).await;
    app.advance(chrono::Duration::seconds(1));
    app.org(&org, json!({ "limits": { "users": 3 } })).await;
    app.advance(chrono::Duration::seconds(1));
    let set = app.put(&format!("/v1/orgs/{org}/usage/contacts"), json!({ "value": 12 }), &quota_tests::APP).await;
    assert_eq!(set.status, 200);
    let audit = app.get(&format!("/v1/admin/orgs/{org}/audit"), &ADMIN).await.body;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["usage_set", "limits_changed", "plan_changed", "org_created"]);
    let plan = &audit["entries"][2];
    assert_eq!((plan["before"].clone(), plan["after"].clone()), (json!("free"), json!("growth")));
    assert_eq!(audit["entries"][0]["actor"], "app");
    assert_eq!(app.events(&org).iter().filter(|(k, _)| k == "PlanChanged").count(), 1);

    let limited = app.get(&format!("/v1/admin/orgs/{org}/audit?limit=2"), &ADMIN).await.body;
    assert_eq!(limited["entries"].as_array().unwrap().len(), 2);
    let bad = app.get(&format!("/v1/admin/orgs/{org}/audit?limit=0"), &ADMIN).await;
    assert_eq!(bad.code(), Some("INVALID_REQUEST"));
    let ghost = app.get("/v1/admin/orgs/ghost/audit", &ADMIN).await;
    assert_eq!(ghost.code(), Some("ORG_NOT_FOUND"));
    let ghost = app.post("/v1/admin/orgs/ghost/reset", json!({ "reason": "x" }), &ADMIN).await;
    assert_eq!(ghost.code(), Some("ORG_NOT_FOUND"));
    let bound = quota_tests::Auth::Token { sub: "x", scope: "quota:admin", org: Some("audit") };
    assert_eq!(app.get(&format!("/v1/admin/orgs/{org}/audit"), &bound).await.status, 403);
}

#[tokio::test]
async fn a_failed_send_is_retried_by_the_next_job_run_once() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-fail");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;

    let mut down_app = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    let consumed = app.send_via(&down_app, Method::POST, &path, Some(r#"{"amount":80}"#), &[], &APP).await;
    assert_eq!(consumed.status, 200, "the consume succeeds though SES is down");
    assert_eq!(app.usage(&org).await.body["notificationsSent"], json!({}), "nothing marked sent");

    // Another org that owes nothing: the failure must not stop its run.
    let calm = app.unique("calm");
    app.org(&calm, json!({ "plan": "basic" })).await;

    let summary = usage_job::run(&down_app, app.now()).await;
    assert_eq!(summary.emails_sent, 0);
    assert_eq!((summary.orgs_seen, summary.failures), (2, 1), "{summary:?}");
    assert_eq!(summary.failed_orgs, std::slice::from_ref(&org));
    // Both orgs' snapshots: a notice that failed costs its org no history.
    assert_eq!(summary.snapshots, 2 * app.deps.catalogue.resources.len(), "{summary:?}");
    assert!(app.emails(&org).await.is_empty());

    down_app.notifier = app.deps.notifier.clone();
    let summary = usage_job::run(&down_app, app.now()).await;
    assert_eq!(summary.failures, 0, "{summary:?}");
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 80% of your monthly conversations"]);
    usage_job::run(&down_app, app.now()).await;
    assert_eq!(app.emails(&org).await.len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_consumes_across_thresholds_email_each_threshold_once() {
    use std::sync::Arc;
    let app = Arc::new(TestApp::new("2026-03-02T09:00:00Z").await);
    let org = app.unique("mail-race");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.consume(&org, "conversations", 70).await;
    // 40 callers at once for the last 30 units: 80 % and 100 % are crossed
    // somewhere in the middle, by whichever calls happen to land there.
    let tasks = (0..40).map(|_| {
        let (app, org) = (Arc::clone(&app), org.clone());
        tokio::spawn(async move { app.consume(&org, "conversations", 1).await.status })
    });
    let statuses: Vec<u16> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 30, "{statuses:?}");
    // A crossing that met another's lease is left to the job.
    app.run_job().await;
    app.run_job().await;
    // 100 % exactly once. 80 % at most once: when the 100 % crossing wins the
    // race to the lease, 80 % counts as sent with it, as when one write
    // crosses both (an "80 % used" email after "quota reached" would mislead).
    let subjects = subjects(&app.emails(&org).await);
    let full = "Monthly quota reached: conversations are paused";
    let eighty = "You have used 80% of your monthly conversations";
    assert_eq!(subjects.iter().filter(|s| *s == full).count(), 1, "{subjects:?}");
    assert!(subjects.iter().filter(|s| *s == eighty).count() <= 1, "{subjects:?}");
    assert!(subjects.iter().all(|s| s == full || s == eighty), "{subjects:?}");
    assert_eq!(app.usage(&org).await.body["notificationsSent"]["conversations"], json!([80, 100]));
}

#[tokio::test]
async fn a_huge_overage_marks_three_thresholds_not_millions() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-huge");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let r = app.consume(&org, "conversations", 9_007_199_254_740_991).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = app.usage(&org).await.body["notificationsSent"]["conversations"].clone();
    assert_eq!(sent, json!([80, 100, 4_294_967_290u32]), "the highest 10 % step a threshold can name");
    assert_eq!(app.emails(&org).await.len(), 1);
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn a_consume_with_an_idempotency_key_that_crosses_a_threshold_emails_and_publishes() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("mail-key");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.consume_with_key(&org, "conversations", 79, "a").await;
    assert!(app.emails(&org).await.is_empty());
    assert_eq!(app.consume_with_key(&org, "conversations", 1, "b").await.status, 200);
    assert_eq!(app.emails(&org).await.len(), 1);
    let crossed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "QuotaThresholdCrossed").collect();
    assert_eq!(crossed.len(), 1);
    assert_eq!(crossed[0].1["threshold"], 80);
    // A replay of the crossing consume sends nothing again.
    app.consume_with_key(&org, "conversations", 1, "b").await;
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn an_email_still_owed_when_the_period_ends_is_sent_by_the_next_run() {
    let app = TestApp::new("2026-03-31T23:00:00Z").await;
    let org = app.unique("mail-late");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    let consumed = app.send_via(&down, Method::POST, &path, Some(r#"{"amount":100}"#), &[], &APP).await;
    assert_eq!(consumed.status, 200);
    assert!(app.emails(&org).await.is_empty(), "SES was down");

    app.set_now("2026-04-01T00:15:00Z");
    let summary = app.run_job().await;
    assert_eq!((summary["emailsSent"].clone(), summary["periodsClosed"].clone()), (json!(1), json!(1)), "{summary}");
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 100% of your monthly conversations"]);
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 1);
}
