//! The daily job: trial expiry, period close for billing, snapshots and
//! history, many orgs in one run.

use std::sync::Arc;

use chrono::Duration;
use futures::StreamExt;
use quota_tests::{APP, Fault, Rule, TestApp, json};

#[tokio::test]
async fn trial_expiry_sends_one_email_and_blocks_further_consumes() {
    let app = TestApp::new("2026-03-01T08:00:00Z").await;
    let org = app.unique("trial-job");
    app.org(&org, json!({ "plan": "free", "locale": "da", "contacts": app.contacts(&org) })).await;
    app.consume(&org, "contacts", 3).await;

    let before = app.run_job().await;
    assert_eq!(before["trialsExpired"], 0, "{before}");
    app.advance(Duration::days(30));
    let summary = app.run_job().await;
    assert_eq!(summary["trialsExpired"], 1, "{summary}");
    let emails = app.emails(&org).await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].subject, "Jeres gratis prøveperiode er slut");
    assert_eq!(emails[0].to.len(), 3);

    let refused = app.consume(&org, "conversations", 1).await;
    assert_eq!((refused.status, refused.body["reason"].as_str()), (402, Some("trial_expired")));

    let again = app.run_job().await;
    assert_eq!(again["trialsExpired"], 0);
    assert_eq!(app.emails(&org).await.len(), 1, "one trial email, ever");
    let expired: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "TrialExpired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].1["trialEndedAt"], "2026-03-31T08:00:00Z");

    // An upgrade ends the block; an extended trial would re-arm the notice.
    app.org(&org, json!({ "plan": "basic" })).await;
    assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
}

#[tokio::test]
async fn period_close_emits_one_event_with_the_overage() {
    let app = TestApp::new("2026-03-20T12:00:00Z").await;
    let org = app.unique("close");
    app.org(&org, json!({ "plan": "basic" })).await;
    app.consume(&org, "conversations", 130).await;

    app.set_now("2026-04-02T00:30:00Z");
    let first = app.run_job().await;
    assert_eq!(first["periodsClosed"], 1, "{first}");
    let second = app.run_job().await;
    assert_eq!(second["periodsClosed"], 0, "{second}");

    let closed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let detail = &closed[0].1;
    assert_eq!(detail["period"], json!({ "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z" }));
    assert_eq!(detail["plan"], "basic");
    let conv = detail["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "conversations").unwrap();
    assert_eq!(
        (conv["used"].clone(), conv["overage"].clone(), conv["limit"].clone()),
        (json!(130), json!(30), json!(100))
    );
    assert_eq!(app.resource_usage(&org, "conversations").await["used"], 0);
}

#[tokio::test]
async fn a_period_closed_by_a_consume_is_emitted_by_the_job_once() {
    let app = TestApp::new("2026-03-20T12:00:00Z").await;
    let org = app.unique("close2");
    app.org(&org, json!({ "plan": "growth" })).await;
    app.consume(&org, "conversations", 7).await;
    app.set_now("2026-04-01T00:00:05Z");
    app.consume(&org, "conversations", 1).await; // rolls the period over
    app.run_job().await;
    app.run_job().await;
    let closed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].1["resources"][0]["used"], 7);
    assert_eq!(closed[0].1["resources"][0]["overage"], 0);
}

#[tokio::test]
async fn history_comes_from_daily_snapshots_and_usage_has_a_forecast() {
    let app = TestApp::new("2026-03-01T06:00:00Z").await;
    let org = app.unique("hist");
    app.org(&org, json!({ "plan": "pro" })).await;
    for used in [100, 150, 200] {
        app.consume(&org, "conversations", used).await;
        app.run_job().await;
        app.advance(Duration::days(1));
    }
    let r = app.get(&format!("/v1/orgs/{org}/usage/conversations/history?days=7"), &APP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["days"],
        json!([
            { "date": "2026-03-01", "used": 100, "limit": 750 },
            { "date": "2026-03-02", "used": 250, "limit": 750 },
            { "date": "2026-03-03", "used": 450, "limit": 750 },
        ])
    );
    assert_eq!((r.body["from"].as_str(), r.body["to"].as_str()), (Some("2026-02-26"), Some("2026-03-04")));
    // Now is 4 March 06:00, 78 hours into the period, with 450 of 750 used:
    // at that rate the limit falls 78 h × 750 / 450 = 130 h in, 6 March 10:00.
    let conv = app.resource_usage(&org, "conversations").await;
    assert_eq!(conv["forecast"], "2026-03-06T10:00:00Z");
    assert_eq!(app.resource_usage(&org, "contacts").await["forecast"], json!(null));
    for bad in ["days=0", "days=367", "days=x"] {
        let r = app.get(&format!("/v1/orgs/{org}/usage/conversations/history?{bad}"), &APP).await;
        assert_eq!(r.code(), Some("INVALID_REQUEST"), "{bad}");
    }
    let r = app.get("/v1/orgs/nobody/usage/conversations/history", &APP).await;
    assert_eq!(r.code(), Some("ORG_NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_processes_a_thousand_orgs_with_requests_linear_in_orgs() {
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    let orgs: Vec<String> = (0..1000).map(|i| format!("bulk-{i:04}")).collect();
    futures::stream::iter(orgs.clone())
        .for_each_concurrent(32, |org| {
            let app = Arc::clone(&app);
            async move {
                app.org(&org, json!({ "plan": "growth" })).await;
            }
        })
        .await;
    app.requests.take();
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!(summary.orgs_seen, 1000, "{summary:?}");
    assert_eq!(summary.failures, 0);
    assert_eq!(summary.snapshots, 1000 * app.deps.catalogue.resources.len());
    let requests = app.requests.take_counts();
    // Per org: one Query of its state; snapshots go 25 orgs to a
    // BatchWriteItem (a page's last batch may be short); the index scan's
    // pages come on top.
    assert_eq!(requests.get("Query"), Some(&1000), "{requests:?}");
    let batches = requests.get("BatchWriteItem").copied().unwrap_or_default();
    assert!((40..=40 + 12).contains(&batches), "{requests:?}");
    let total: usize = requests.values().sum();
    assert!(total <= 1000 + 52 + 20, "{total} requests for 1000 orgs: {requests:?}");
}

#[tokio::test]
async fn an_org_update_keeps_the_trial_notice_sent() {
    let app = TestApp::new("2026-03-01T08:00:00Z").await;
    let org = app.unique("trial-keep");
    app.org(&org, json!({ "plan": "free", "contacts": app.contacts(&org) })).await;
    app.advance(Duration::days(31));
    assert_eq!(app.run_job().await["trialsExpired"], 1);
    // Updates that leave the trial alone must not re-arm its notice...
    app.org(&org, json!({ "locale": "da" })).await;
    assert_eq!(app.run_job().await["trialsExpired"], 0);
    assert_eq!(app.emails(&org).await.len(), 1);
    // ...and a new trial end does.
    app.org(&org, json!({ "trialEndsAt": "2026-04-05T00:00:00Z" })).await;
    assert_eq!(app.consume(&org, "tasks", 1).await.status, 200, "the extended trial is running");
    app.set_now("2026-04-05T00:00:00Z");
    assert_eq!(app.run_job().await["trialsExpired"], 1);
    assert_eq!(app.emails(&org).await.len(), 2);
}

#[tokio::test]
async fn a_plan_change_after_the_period_ended_bills_the_old_period_under_the_old_plan() {
    let app = TestApp::new("2026-03-20T12:00:00Z").await;
    let org = app.unique("boundary");
    app.org(&org, json!({ "plan": "growth" })).await;
    app.consume(&org, "conversations", 450).await;
    // Upgraded at 00:05 on 1 April: before any consume or job run in April.
    app.set_now("2026-04-01T00:05:00Z");
    app.org(&org, json!({ "plan": "pro" })).await;
    app.run_job().await;
    let closed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1);
    let conv = &closed[0].1["resources"][0];
    assert_eq!(conv["plan"], "growth");
    assert_eq!(
        (conv["used"].clone(), conv["limit"].clone(), conv["overage"].clone()),
        (json!(450), json!(300), json!(150))
    );
    let now = app.resource_usage(&org, "conversations").await;
    assert_eq!((now["used"].clone(), now["limit"].clone()), (json!(0), json!(750)));
}

/// A scheduled run that could not finish fails its invocation (so that
/// EventBridge retries it), carrying the summary of what it did.
#[tokio::test]
async fn an_incomplete_scheduled_run_fails_its_invocation_with_its_summary() {
    use quota_tests::{Fault, Rule};
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let scheduled = quota_tests::aws::scheduled("2026-03-02T00:15:00Z");
    let failing = app.unique("sched-fail");
    app.org(&failing, json!({ "plan": "free", "contacts": app.contacts(&failing) })).await;
    app.org(&app.unique("sched-ok"), json!({ "plan": "basic" })).await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::InternalError));
    assert_eq!(app.consume(&failing, "conversations", 90).await.status, 200);

    // One org fails (SES is down for its email); the other is done.
    let err =
        usage_job::handle_event(&app.deps, scheduled.clone(), Default::default()).await.expect_err("an incomplete run");
    assert_eq!((err.0.orgs_seen, err.0.failures, err.0.segments_failed), (2, 1, 0), "{:?}", err.0);
    assert_eq!(err.0.failed_orgs, std::slice::from_ref(&failing));
    // Both orgs' snapshots are written: a notice that failed (it stays
    // owed) costs its org no history.
    assert_eq!(err.0.snapshots, 2 * app.deps.catalogue.resources.len(), "{:?}", err.0);
    assert!(err.to_string().contains("1 org(s) failed"), "{err}");

    // The scan itself fails: every segment, so no org is seen; the admin
    // route answers 503 rather than a summary that looks complete.
    app.faults().aws.clear();
    app.faults().dynamodb.inject(Rule::on("Scan", Fault::InternalError));
    let err =
        usage_job::handle_event(&app.deps, scheduled.clone(), Default::default()).await.expect_err("a failed scan");
    assert_eq!((err.0.segments_failed, err.0.orgs_seen), (usage_job::SEGMENTS as usize, 0), "{:?}", err.0);
    let admin = app.post("/v1/admin/jobs/daily", json!({}), &quota_tests::ADMIN).await;
    assert_eq!((admin.status, admin.code()), (503, Some("STORE_UNAVAILABLE")), "{}", admin.body);

    // Once SES and the store are back, the run completes.
    app.faults().dynamodb.clear();
    let done = usage_job::handle_event(&app.deps, scheduled, Default::default()).await.expect("a complete run");
    assert_eq!((done["failures"].clone(), done["emailsSent"].clone()), (json!(0), json!(1)), "{done}");
}

/// A basic org at 85 % of March whose 80 % email failed (SES down), so it
/// is owed; returns its id.
async fn owing(app: &TestApp, base: &str) -> (String, quota_shared::domain::org::OrgId) {
    use lambda_http::http::Method;
    let org = app.unique(base);
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    let down = app.ses_down().await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    let r = app.send_via(&down, Method::POST, &path, Some(r#"{"amount":85}"#), &[], &APP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = quota_shared::domain::org::OrgId::parse(&org).unwrap();
    (org, id)
}

/// Review D2: a claim the job takes lasts its full time from when it is
/// taken, not from when the run began (a run may last 15 minutes).
#[tokio::test]
async fn the_job_claims_with_the_time_it_claims_not_the_time_it_started() {
    use quota_tests::{Fault, Rule};
    let app = Arc::new(TestApp::with_faults("2026-03-02T09:00:00Z").await);
    let (_org, id) = owing(&app, "lease-clock").await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::Delay(std::time::Duration::from_millis(600))));
    // A run that began ten minutes ago reaches this org now.
    let started = app.now() - Duration::minutes(10);
    let run = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { usage_job::run(&app.deps, started).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let counter = app.direct.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    let claim = counter.notice.expect("the job holds a claim while SES is slow");
    assert!(!claim.lapsed(app.now().timestamp() + 100), "the claim runs from now: {claim:?}");
    assert_eq!(run.await.unwrap().emails_sent, 1);
}

/// Review D3: a `UsagePeriodClosed` whose publish timed out after
/// EventBridge accepted it is neither retried by the SDK nor published
/// again by the next run: one billing event.
#[tokio::test]
async fn a_period_close_whose_publish_timed_out_is_not_published_twice() {
    use quota_tests::{Fault, Rule};
    let app = TestApp::with_faults("2026-03-20T12:00:00Z").await;
    let org = app.unique("close-timeout");
    app.org(&org, json!({ "plan": "basic" })).await;
    assert_eq!(app.consume(&org, "conversations", 30).await.status, 200);
    app.set_now("2026-04-01T00:15:00Z");
    // EventBridge accepts every PutEvents but answers after the client gave up.
    app.faults().aws.inject(Rule::on("PutEvents", Fault::DelayResponse(std::time::Duration::from_secs(2))));
    let first = usage_job::run(&app.deps, app.now()).await;
    assert_eq!(first.failures, 1, "{first:?}");
    app.faults().aws.clear();
    for at in ["2026-04-01T00:16:00Z", "2026-04-01T00:20:00Z", "2026-04-02T00:15:00Z"] {
        app.set_now(at);
        usage_job::run(&app.deps, app.now()).await;
    }
    let accepted = app
        .faults()
        .aws
        .accepted("PutEvents")
        .iter()
        .filter(|b| {
            String::from_utf8_lossy(b).contains("UsagePeriodClosed") && String::from_utf8_lossy(b).contains(&org)
        })
        .count();
    assert_eq!(accepted, 1, "one UsagePeriodClosed reached EventBridge");
}

/// Review S5: a lapsed claim that a rollover moved to a closed period after
/// the job's scan read the counter is settled in the same run.
#[tokio::test]
async fn a_lapsed_claim_moved_by_a_rollover_after_the_scan_is_settled_in_that_run() {
    use quota_tests::{Fault, Rule};
    let app = Arc::new(TestApp::with_faults("2026-03-31T20:00:00Z").await);
    let (org, id) = owing(&app, "moved-claim").await;
    // A sender claimed the 80 % email and died during its SES call.
    let kind = quota_shared::domain::catalogue::ResourceKind::Period;
    let counter = app.direct.store.counter(&id, "conversations", kind, app.deps.catalogue, app.now()).await.unwrap();
    let claim = app.direct.store.claim_threshold(&id, "conversations", 80, 100, counter.period, app.now()).await;
    let holder = quota_shared::store::notice_claims::NoticeHolder::Counter(counter.period);
    let lease = claim.unwrap().unwrap().lease;
    assert!(app.direct.store.threshold_sending(&id, "conversations", lease, holder).await.unwrap());
    // April. The job's scan answers late; a consume rolls March over meanwhile.
    app.set_now("2026-04-01T00:15:00Z");
    app.faults().dynamodb.inject(Rule::on("Scan", Fault::DelayResponse(std::time::Duration::from_millis(500))));
    let run = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { usage_job::run(&app.deps, app.now()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    let r = app.send_via(&app.direct, lambda_http::http::Method::POST, &path, Some(r#"{"amount":1}"#), &[], &APP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let summary = run.await.unwrap();
    assert_eq!((summary.presumed_delivered, summary.emails_sent), (1, 0), "{summary:?}");
    assert!(app.emails(&org).await.is_empty(), "presumed delivered by the vanished sender, not sent again");
}

/// DynamoDB filters a query after it reads a page (1 MB): a page whose
/// items are all filtered out still ends with a key to go on from. The
/// job's read of closed periods that still have work must follow it, or a
/// period closed after years of settled ones is never billed.
#[tokio::test]
async fn a_closed_period_behind_a_page_of_settled_ones_is_still_billed() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let app = TestApp::with_faults("2026-03-20T12:00:00Z").await;
    let org = app.unique("deep");
    app.org(&org, json!({ "plan": "basic" })).await;
    app.consume(&org, "conversations", 130).await;

    // 30 settled records that sort before the period about to close.
    let store = &app.direct.store;
    let puts = futures::stream::iter(0..30).map(|i| {
        let item = [
            ("pk", format!("ORG#{org}")),
            ("sk", format!("CLOSED#archive{i:03}#0#1")),
            ("emittedAt", "2020-01-01T00:00:00Z".into()),
        ]
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v)));
        store.client().put_item().table_name(store.table()).set_item(Some(item.into())).send()
    });
    let written: Vec<_> = puts.buffer_unordered(8).collect().await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");

    app.faults().dynamodb.inject(Rule::on("Query", Fault::SmallPages(10)));
    app.set_now("2026-04-02T00:30:00Z");
    let summary = app.run_job().await;
    assert_eq!(summary["periodsClosed"], 1, "{summary}");
    assert!(app.faults().dynamodb.injected()["SmallPages"] > 3, "the closed records were read in pages");
    let closed: Vec<_> = app.events(&org).into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let conv = closed[0].1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "conversations").cloned();
    assert_eq!(conv.unwrap()["overage"], 30);
}

/// One org's unreadable item (a hand edit, a value a newer version wrote)
/// fails that org alone: every other org is still processed, and the
/// summary names the one that failed.
#[tokio::test]
async fn an_unreadable_item_fails_its_org_alone() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let orgs: Vec<String> = (0..40).map(|i| app.unique(&format!("mixed{i:02}"))).collect();
    for org in &orgs {
        app.org(org, json!({ "plan": "basic" })).await;
        app.consume(org, "conversations", 1).await;
    }
    let broken = &orgs[17];
    let store = &app.direct.store;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("ORG#{broken}")))
        .key("sk", AttributeValue::S("STATE#USAGE#conversations".into()))
        .update_expression("SET enf = :bad")
        .expression_attribute_values(":bad", AttributeValue::S("sometimes".into()))
        .send()
        .await
        .expect("break the counter");

    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.orgs_seen, summary.failures, summary.segments_failed), (40, 1, 0), "{summary:?}");
    assert_eq!(summary.failed_orgs, std::slice::from_ref(broken));
    assert_eq!(summary.snapshots, 39 * app.deps.catalogue.resources.len());
}

/// What the job's index lists for an org: the sort keys of its entries.
async fn listed(app: &TestApp, org: &str) -> Vec<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = &app.direct.store;
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .index_name("job")
        .filter_expression("jobOrg = :org")
        .expression_attribute_values(":org", AttributeValue::S(org.into()))
        .send()
        .await
        .expect("scan the index");
    let mut sks: Vec<String> = out.items().iter().filter_map(|i| i.get("sk")?.as_s().ok().cloned()).collect();
    sks.sort();
    sks
}

/// The job's cost follows orgs, not history: a closed period leaves the
/// index once its event is out and it owes no notice, at once when it owed
/// none, or in the run after the one that settled it; from then on the org
/// costs the job one `Query`.
#[tokio::test]
async fn settled_periods_leave_the_jobs_index() {
    let app = TestApp::new("2026-03-20T09:00:00Z").await;
    let quiet = app.unique("quiet");
    app.org(&quiet, json!({ "plan": "basic" })).await;
    app.consume(&quiet, "conversations", 10).await;
    // An 80 % email that could not be sent is owed when March closes.
    let (owing, _) = owing(&app, "owing").await;
    assert_eq!(listed(&app, &quiet).await, ["STATE#PROFILE"]);

    // April: SES still down. Both periods close and their events go out;
    // the quiet one owes nothing and leaves the index with its mark.
    app.set_now("2026-04-01T00:15:00Z");
    let down = app.ses_down().await;
    let run = usage_job::run(&down, app.now()).await;
    assert_eq!(run.failed_orgs, std::slice::from_ref(&owing), "{run:?}");
    let closed_events = |org: &str| app.events(org).iter().filter(|(k, _)| k == "UsagePeriodClosed").count();
    assert_eq!((closed_events(&quiet), closed_events(&owing)), (1, 1));
    assert_eq!(listed(&app, &quiet).await, ["STATE#PROFILE"]);
    let closed = listed(&app, &owing).await;
    assert_eq!(closed.len(), 2, "the owing period stays listed: {closed:?}");

    // SES is back: the notice goes out; the record is settled.
    app.set_now("2026-04-02T00:15:00Z");
    let run = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((run.emails_sent, run.failures), (1, 0), "{run:?}");
    assert_eq!(app.emails(&owing).await.len(), 1);
    // The next run reads it once more, finds it settled, and takes it out.
    app.set_now("2026-04-03T00:15:00Z");
    usage_job::run(&app.deps, app.now()).await;
    assert_eq!(listed(&app, &owing).await, ["STATE#PROFILE"]);

    // From now on each org costs one Query (and its share of the snapshot
    // write and the index scan).
    app.set_now("2026-04-04T00:15:00Z");
    app.requests.take();
    let run = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((run.orgs_seen, run.emails_sent, run.periods_closed), (2, 0, 0), "{run:?}");
    let requests = app.requests.take_counts();
    assert_eq!(requests.get("Query"), Some(&2), "{requests:?}");
    assert_eq!(requests.get("UpdateItem"), None, "{requests:?}");
}

#[tokio::test]
async fn orgs_whose_snapshots_cannot_be_written_fail_and_the_next_run_writes_them() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    let orgs: Vec<String> = (0..30).map(|i| app.unique(&format!("snapless{i:02}"))).collect();
    for org in &orgs {
        app.org(org, json!({ "plan": "basic" })).await;
    }
    app.faults().dynamodb.inject(Rule::on("BatchWriteItem", Fault::InternalError));
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.orgs_seen, summary.failures, summary.snapshots), (30, 30, 0), "{summary:?}");
    assert!(!summary.complete());

    app.faults().dynamodb.clear();
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.orgs_seen, summary.failures), (30, 0), "{summary:?}");
    assert_eq!(summary.snapshots, 30 * app.deps.catalogue.resources.len());
}
