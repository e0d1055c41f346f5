//! Emails exactly once, in every scenario without a crash: an email still
//! owed when its period ends survives the rollover, whoever does it; a
//! lower threshold never follows a higher one; an org update or a failed
//! mark never leads to a second email; SES or EventBridge down or slow
//! never holds a consume past its budget, and what they missed goes out
//! once when they are back.

// The handlers' futures, awaited inside these tests' own, nest deeply.
#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use lambda_http::http::Method;
use quota_shared::delivery;
use quota_tests::{ADMIN, APP, Fault, Rule, TestApp, json};

fn subjects(emails: &[quota_tests::SentEmail]) -> Vec<String> {
    emails.iter().map(|e| e.subject.clone()).collect()
}

fn count(app: &TestApp, org: &str, kind: &str) -> usize {
    app.events(org).iter().filter(|(k, _)| k == kind).count()
}

/// A basic org at 100 % of March, its email failed (SES down).
async fn owed_at_march_end(app: &TestApp, base: &str) -> String {
    let org = app.unique(base);
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    let r = app.send_via(&down, Method::POST, &path, Some(r#"{"amount":100}"#), &[], &APP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.emails(&org).await.is_empty(), "SES was down");
    org
}

#[tokio::test]
async fn an_email_owed_at_period_end_survives_a_rollover_by_consume_plan_change_or_reset() {
    let app = TestApp::new("2026-03-31T20:00:00Z").await;
    let by_consume = owed_at_march_end(&app, "owed-consume").await;
    let by_plan = owed_at_march_end(&app, "owed-plan").await;
    let by_reset = owed_at_march_end(&app, "owed-reset").await;

    // April begins; each org's period is rolled over before the job runs.
    app.set_now("2026-04-01T00:00:05Z");
    assert_eq!(app.consume(&by_consume, "conversations", 1).await.status, 200);
    app.org(&by_plan, json!({ "plan": "growth" })).await;
    let reset = app.post(&format!("/v1/admin/orgs/{by_reset}/reset"), json!({ "reason": "test" }), &ADMIN).await;
    assert_eq!(reset.status, 200, "{}", reset.body);

    app.set_now("2026-04-01T00:15:00Z");
    let summary = app.run_job().await;
    assert_eq!(summary["failures"], 0, "{summary}");
    app.set_now("2026-04-02T00:15:00Z");
    app.run_job().await;
    for org in [&by_consume, &by_plan, &by_reset] {
        assert_eq!(
            subjects(&app.emails(org).await),
            ["You have used 100% of your monthly conversations"],
            "{org}: March's email, once"
        );
        assert_eq!(count(&app, org, "UsagePeriodClosed"), 1, "{org}");
    }
}

#[tokio::test]
async fn a_crossing_deferred_by_another_senders_lease_is_sent_after_the_rollover() {
    let app = TestApp::new("2026-03-31T20:00:00Z").await;
    let org = app.unique("deferred");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    app.send_via(&down, Method::POST, &path, Some(r#"{"amount":80}"#), &[], &APP).await;
    // Another sender holds the lease (it claimed the owed 80 % a moment ago)...
    let counter = app.deps.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    let lease = app.deps.store.claim_threshold(&id, "conversations", 80, 100, counter.period, app.now()).await.unwrap();
    assert!(lease.is_some());
    // ...when this consume crosses 100 %: it cannot claim, and defers.
    assert_eq!(app.consume(&org, "conversations", 20).await.status, 200);
    assert!(app.emails(&org).await.is_empty());
    // The other sender gives up (its send failed); the period ends and a
    // consume rolls it over before any job run.
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(counter.period);
    app.deps.store.release_threshold(&id, "conversations", lease.unwrap().lease, holder).await.unwrap();
    app.set_now("2026-04-01T00:00:01Z");
    app.org(&org, json!({ "plan": "basic" })).await;
    assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
    app.set_now("2026-04-01T00:15:00Z");
    app.run_job().await;
    app.run_job().await;
    assert_eq!(subjects(&app.emails(&org).await), ["Monthly quota reached: conversations are paused"]);
}

#[tokio::test]
async fn a_lower_threshold_is_never_sent_after_a_higher_one() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("stale");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    app.send_via(&down, Method::POST, &path, Some(r#"{"amount":115}"#), &[], &APP).await;
    // A job working from a stale scan holds the counter at 115 %, 110 owed...
    let stale = app.deps.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    // ...while a consume takes it to 125 % and sends 120.
    assert_eq!(app.consume(&org, "conversations", 10).await.status, 200);
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 120% of your monthly conversations"]);
    let profile = app.deps.store.profile(&id).await.unwrap().unwrap();
    let sent =
        delivery::deliver_threshold(&app.deps, &profile, &stale, app.now(), Duration::from_secs(5), 3).await.unwrap();
    assert!(!sent.sent(), "110 counts as sent once 120 is");
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn an_org_update_while_the_trial_email_is_sending_does_not_send_it_twice() {
    let app = std::sync::Arc::new(TestApp::with_faults("2026-03-01T08:00:00Z").await);
    let org = app.unique("trial-race");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.set_now("2026-04-05T00:15:00Z");
    // The org update reads the profile, then its write is held back; the job
    // claims the trial notice meanwhile and is slow to send (SES is slow).
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::Delay(Duration::from_millis(400))).times(1));
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::Delay(Duration::from_millis(800))).times(1));
    let update = {
        let (app, org) = (app.clone(), org.clone());
        tokio::spawn(async move { app.put(&format!("/v1/orgs/{org}"), json!({ "locale": "da" }), &ADMIN).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = usage_job::run(&app.deps, app.now()).await;
    assert_eq!(update.await.unwrap().status, 200);
    assert_eq!(job.trials_expired, 1, "{job:?}");
    app.faults().dynamodb.clear();
    app.faults().aws.clear();
    app.set_now("2026-04-06T00:15:00Z");
    let again = usage_job::run(&app.deps, app.now()).await;
    assert_eq!(again.trials_expired, 0, "{again:?}");
    assert_eq!(app.emails(&org).await.len(), 1, "one trial email");
    assert_eq!(count(&app, &org, "TrialExpired"), 1);
}

#[tokio::test]
async fn a_mark_that_meets_a_transaction_conflict_never_leads_to_a_resend() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("mark-conflict");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    // UpdateItems of the consume: the write, the claim, then the mark.
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::TransactionConflict).skip(2).times(1));
    assert_eq!(app.consume(&org, "conversations", 80).await.status, 200);
    assert_eq!(app.faults().dynamodb.injected()["TransactionConflict"], 1);
    assert_eq!(app.usage(&org).await.body["notificationsSent"]["conversations"], json!([80]));
    app.set_now("2026-03-03T09:00:00Z");
    app.run_job().await;
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn ses_stalled_during_a_consume_keeps_it_within_budget_and_the_job_sends_once() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("ses-stall");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::Stall));
    let started = Instant::now();
    let r = app.consume(&org, "conversations", 85).await;
    assert_eq!((r.status, r.used()), (200, 85), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(3), "answered in {:?}", started.elapsed());
    assert_eq!(app.usage(&org).await.body["notificationsSent"], json!({}), "still owed");
    app.faults().aws.clear();
    app.set_now("2026-03-03T00:15:00Z");
    assert_eq!(app.run_job().await["emailsSent"], 1);
    app.run_job().await;
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 80% of your monthly conversations"]);
}

#[tokio::test]
async fn eventbridge_down_during_a_consume_loses_neither_event_nor_email() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("bus-down");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.faults().aws.inject(Rule::on("PutEvents", Fault::InternalError));
    let started = Instant::now();
    let r = app.consume(&org, "conversations", 100).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(3), "answered in {:?}", started.elapsed());
    assert_eq!(count(&app, &org, "QuotaThresholdCrossed"), 0);
    app.faults().aws.clear();
    app.set_now("2026-03-03T00:15:00Z");
    app.run_job().await;
    app.run_job().await;
    assert_eq!(count(&app, &org, "QuotaThresholdCrossed"), 1);
    assert_eq!(count(&app, &org, "QuotaExceeded"), 1);
    assert_eq!(subjects(&app.emails(&org).await), ["Monthly quota reached: conversations are paused"]);
}

#[tokio::test]
async fn ses_down_during_the_job_is_reported_and_sent_once_when_back() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("job-ses");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::InternalError));
    assert_eq!(app.consume(&org, "conversations", 90).await.status, 200);
    let failed = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((failed.failures, failed.emails_sent), (1, 0), "{failed:?}");
    app.faults().aws.clear();
    let ok = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((ok.failures, ok.emails_sent), (0, 1), "{ok:?}");
    usage_job::run(&app.deps, app.now()).await;
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn a_claim_whose_sender_vanished_before_calling_out_is_sent_again() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("vanished-early");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    app.send_via(&down, Method::POST, &path, Some(r#"{"amount":80}"#), &[], &APP).await;
    // A sender claims the owed notice, then dies before calling SES.
    let period = app.resource_usage(&org, "conversations").await["period"].clone();
    let period = serde_json::from_value::<serde_json::Value>(period).unwrap();
    let period = quota_shared::domain::period::Period {
        start: period["start"].as_str().unwrap().parse().unwrap(),
        end: period["end"].as_str().unwrap().parse().unwrap(),
    };
    let lease = app.deps.store.claim_threshold(&id, "conversations", 80, 100, Some(period), app.now()).await.unwrap();
    assert!(lease.is_some());
    // While its claim is live, nobody sends; once it lapsed, the job does.
    assert_eq!(usage_job::run(&app.deps, app.now()).await.emails_sent, 0);
    app.advance(chrono::Duration::minutes(3));
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.emails_sent, summary.presumed_delivered), (1, 0), "{summary:?}");
    usage_job::run(&app.deps, app.now()).await;
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 80% of your monthly conversations"]);
}

#[tokio::test]
async fn a_claim_whose_sender_vanished_mid_call_is_presumed_delivered_not_sent_twice() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("vanished-late");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    app.send_via(&down, Method::POST, &path, Some(r#"{"amount":80}"#), &[], &APP).await;
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let counter = app.deps.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    let lease = app.deps.store.claim_threshold(&id, "conversations", 80, 100, counter.period, app.now()).await.unwrap();
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(counter.period);
    // It recorded `sending` and died during the SES call.
    assert!(app.deps.store.threshold_sending(&id, "conversations", lease.unwrap().lease, holder).await.unwrap());
    app.advance(chrono::Duration::minutes(3));
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.emails_sent, summary.presumed_delivered), (0, 1), "{summary:?}");
    assert!(app.emails(&org).await.is_empty(), "not sent a second time");
    assert_eq!(app.usage(&org).await.body["notificationsSent"]["conversations"], json!([80]));
    assert_eq!(usage_job::run(&app.deps, app.now()).await.presumed_delivered, 0, "settled once");
}

/// The counter's period as the store has it.
async fn period_of(
    app: &TestApp,
    id: &quota_shared::domain::org::OrgId,
) -> Option<quota_shared::domain::period::Period> {
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    app.deps.store.counter(id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap().period
}

/// Consumes through the store alone: no notice is attempted.
async fn consume_quietly(app: &TestApp, id: &quota_shared::domain::org::OrgId, amount: i64) {
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let store = &app.deps.store;
    let (r, _) = store.consume(id, "conversations", kind, amount, None, app.deps.catalogue, app.now()).await.unwrap();
    assert!(matches!(r, quota_shared::domain::decision::Consumed::Admitted { .. }), "{r:?}");
}

/// Review D1: a mark that lands on a closed period's record must not drop
/// what that record still owes above it.
#[tokio::test]
async fn a_higher_threshold_owed_by_a_closed_period_survives_a_lower_ones_mark_there() {
    let app = TestApp::new("2026-03-31T20:00:00Z").await;
    let org = app.unique("closed-higher");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    consume_quietly(&app, &id, 80).await;
    // A sender claims 80 %; meanwhile consumes reach 120 % and defer to it.
    let period = period_of(&app, &id).await;
    let claim =
        app.deps.store.claim_threshold(&id, "conversations", 80, 100, period, app.now()).await.unwrap().unwrap();
    assert_eq!(app.consume(&org, "conversations", 40).await.status, 200);
    // April: a consume rolls March over, moving the claim to March's record;
    // the sender's mark follows it there.
    app.set_now("2026-04-01T00:00:05Z");
    assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(period);
    let marked = app.deps.store.mark_threshold(&id, "conversations", 80, claim.lease, holder).await.unwrap();
    assert!(matches!(marked, Some(quota_shared::store::notice_claims::Marked::Closed(_))), "{marked:?}");
    // March still owes its 120 % email; the job sends it, once.
    app.set_now("2026-04-01T00:15:00Z");
    app.run_job().await;
    app.run_job().await;
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 120% of your monthly conversations"]);
}

/// Review D4: a claim taken and never acted on (its sender timed out before
/// calling out) does not hold back the next notice until the job runs.
#[tokio::test]
async fn a_lapsed_claim_that_never_called_out_is_taken_over_at_once() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("takeover");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    consume_quietly(&app, &id, 80).await;
    let period = period_of(&app, &id).await;
    assert!(app.deps.store.claim_threshold(&id, "conversations", 80, 100, period, app.now()).await.unwrap().is_some());
    app.advance(chrono::Duration::minutes(3));
    // No job has run: the consume that reaches 100 % sends its email itself.
    assert_eq!(app.consume(&org, "conversations", 20).await.status, 200);
    assert_eq!(subjects(&app.emails(&org).await), ["Monthly quota reached: conversations are paused"]);
}

/// Review D5: `QuotaExceeded` is published once per period, even when a
/// sender works from a count read before another sender marked 100 %.
#[tokio::test]
async fn quota_exceeded_is_published_once_whatever_the_sender_last_read() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("exceeded-once");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    consume_quietly(&app, &id, 110).await;
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    // c2 read the counter at 110 % with nothing marked...
    let stale = app.deps.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    // ...while c1 claimed 100 %, published QuotaExceeded and marked it.
    let period = stale.period;
    let claim =
        app.deps.store.claim_threshold(&id, "conversations", 100, 100, period, app.now()).await.unwrap().unwrap();
    let exceeded = quota_shared::domain::events::QuotaExceeded {
        org_id: id.clone(),
        resource: "conversations".into(),
        used: 110,
        limit: 100,
        blocked: false,
        plan: "basic".into(),
        period,
        at: app.now(),
    };
    app.deps.events.publish(&exceeded).await.unwrap();
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(period);
    app.deps.store.mark_threshold(&id, "conversations", 100, claim.lease, holder).await.unwrap();
    // c2 now claims 110 %: a crossing, but not a second QuotaExceeded.
    let profile = app.deps.store.profile(&id).await.unwrap().unwrap();
    assert!(
        delivery::deliver_threshold(&app.deps, &profile, &stale, app.now(), Duration::from_secs(5), 1)
            .await
            .unwrap()
            .sent()
    );
    assert_eq!(count(&app, &org, "QuotaThresholdCrossed"), 1);
    assert_eq!(count(&app, &org, "QuotaExceeded"), 1);
}

/// Review D8: two claims taken in the same second are two claims: a sender
/// whose claim a reset took away cannot act on the next one's.
#[tokio::test]
async fn a_claim_is_only_its_own_even_within_one_second() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let org = app.unique("same-second");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    consume_quietly(&app, &id, 80).await;
    let period = period_of(&app, &id).await;
    let stale =
        app.deps.store.claim_threshold(&id, "conversations", 80, 100, period, app.now()).await.unwrap().unwrap();
    // A reset (same second, pinned clock) takes the claim away and re-arms.
    let reset = app.post(&format!("/v1/admin/orgs/{org}/reset"), json!({ "reason": "test" }), &ADMIN).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    consume_quietly(&app, &id, 80).await;
    let fresh =
        app.deps.store.claim_threshold(&id, "conversations", 80, 100, period, app.now()).await.unwrap().unwrap();
    assert_ne!(stale.lease, fresh.lease);
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(period);
    assert!(!app.deps.store.threshold_sending(&id, "conversations", stale.lease, holder).await.unwrap());
    let marked = app.deps.store.mark_threshold(&id, "conversations", 80, stale.lease, holder).await.unwrap();
    assert!(marked.is_none(), "the stale sender's mark does not land: {marked:?}");
    assert!(app.deps.store.threshold_sending(&id, "conversations", fresh.lease, holder).await.unwrap());
}

/// Review D7: slow EventBridge and SES on a consume's crossing do not cut a
/// send under way (which the job would then send again).
#[tokio::test]
async fn a_slow_send_on_the_consume_path_is_not_cut_and_not_sent_again() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("slow-send");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    // Both services do their work at once and answer late.
    app.faults().aws.inject(Rule::on("PutEvents", Fault::DelayResponse(Duration::from_millis(900))));
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::DelayResponse(Duration::from_millis(1200))));
    let started = Instant::now();
    assert_eq!(app.consume(&org, "conversations", 80).await.status, 200);
    assert!(started.elapsed() < quota_shared::timeouts::WORST_CASE_REQUEST, "{:?}", started.elapsed());
    app.faults().aws.clear();
    app.set_now("2026-03-03T00:15:00Z");
    app.run_job().await;
    assert_eq!(subjects(&app.emails(&org).await), ["You have used 80% of your monthly conversations"]);
}

/// Review D6: a mark that meets a stalled store is bounded as a whole (its
/// fallback to a closed period's record included), and the email it could
/// not mark is not sent again.
#[tokio::test]
async fn a_mark_that_meets_a_stalled_store_is_bounded_and_not_followed_by_a_resend() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("mark-stall");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    // UpdateItems of the consume: the write, the claim, `sending`; then the
    // mark and its fallback stall.
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::Stall).skip(3));
    let started = Instant::now();
    assert_eq!(app.consume(&org, "conversations", 80).await.status, 200);
    let took = started.elapsed();
    let bound = quota_shared::timeouts::MARK_BUDGET + Duration::from_millis(300);
    assert!(took < bound, "the mark, fallback included, bounded by MARK_BUDGET: {took:?}");
    app.faults().dynamodb.clear();
    assert_eq!(app.emails(&org).await.len(), 1);
    app.set_now("2026-03-03T00:15:00Z");
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.presumed_delivered, summary.emails_sent), (1, 0), "{summary:?}");
    assert_eq!(app.emails(&org).await.len(), 1, "not sent again");
}
