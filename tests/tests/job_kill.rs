//! The daily job killed mid-run (the process, with SIGKILL) and run again:
//! no duplicate emails, no duplicate `UsagePeriodClosed`. Killed while its
//! calls wait on the store or on an answer from SES, everything goes out
//! exactly once; killed at any instant, nothing goes out twice, and what is
//! missing (a call that had not left the process when `sending` was
//! recorded) is counted in the summary's `presumedDelivered`. The job runs in a
//! child process (this test binary, running `job_child`), wired as in
//! production: clients from the SDK's endpoint variables, here pointing at
//! the fault proxies of the parent's app, whose accepted requests count
//! what really reached SES and EventBridge.

// The handlers' futures, awaited inside these tests' own, nest deeply.
#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambda_http::http::Method;
use quota_tests::{APP, Fault, Rule, TestApp, json};

/// More orgs than the job works on at once (4 segments × 8), so that a
/// kill lands with work done, under way and not begun.
const ORGS: usize = 72;

/// The child: one run of the daily job against the parent's table.
#[tokio::test]
#[ignore = "run as a separate process by the kill tests"]
async fn job_child() {
    let table = std::env::var("QUOTA_CHILD_TABLE").expect("run by the kill tests");
    let now = std::env::var("QUOTA_NOW").expect("QUOTA_NOW").parse().expect("RFC 3339");
    let config = quota_shared::deps::Config::new(
        table,
        quota_tests::BUS.into(),
        quota_tests::SENDER.into(),
        quota_tests::DASHBOARD.into(),
    )
    .expect("valid config");
    let aws = quota_shared::clients::local_config().await;
    let deps = quota_shared::Deps::new(&aws, &config, quota_shared::Clock::fixed(now));
    let summary = usage_job::run(&deps, now).await;
    println!("child summary: {summary:?}");
}

fn spawn_child(app: &TestApp, now: &str) -> Child {
    let faults = app.faults();
    Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--ignored", "--exact", "job_child", "--nocapture", "--test-threads=1"])
        .env("QUOTA_CHILD_TABLE", app.deps.store.table())
        .env("QUOTA_NOW", now)
        .env("AWS_ENDPOINT_URL_DYNAMODB", faults.dynamodb.url())
        .env("AWS_ENDPOINT_URL_SESV2", faults.aws.url())
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", faults.aws.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts")
}

/// Orgs at 85 % of March whose emails failed (SES down), so that on 1 April
/// each owes one email and one period close.
async fn setup(app: &TestApp) -> Vec<String> {
    use futures::StreamExt;
    let down = app.ses_down().await;
    let orgs: Vec<String> = (0..ORGS).map(|i| app.unique(&format!("kill{i}"))).collect();
    futures::stream::iter(&orgs)
        .for_each_concurrent(16, |org| {
            let down = &down;
            async move {
                let contacts = json!({ "owner": format!("owner@{}", app.domain(org)) });
                app.org(org, json!({ "plan": "basic", "contacts": contacts })).await;
                let path = format!("/v1/orgs/{org}/usage/conversations/consume");
                let r = app.send_via(down, Method::POST, &path, Some(r#"{"amount":85}"#), &[], &APP).await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
        })
        .await;
    orgs
}

/// Waits until SES has accepted `n` emails through the proxy.
async fn until_emails(app: &TestApp, n: usize) {
    let started = Instant::now();
    while app.faults().aws.accepted("outbound-emails").len() < n {
        assert!(started.elapsed() < Duration::from_secs(60), "the child makes no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `UsagePeriodClosed` events EventBridge accepted, by org.
fn period_closes(app: &TestApp) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for body in app.faults().aws.accepted("PutEvents") {
        let request: serde_json::Value = serde_json::from_slice(&body).expect("PutEvents JSON");
        for entry in request["Entries"].as_array().into_iter().flatten() {
            if entry["DetailType"] == "UsagePeriodClosed" {
                let detail: serde_json::Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
                *out.entry(detail["orgId"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// After the kill: a run at once (the dead child's claims are still live,
/// so it leaves them), then one after they lapsed (settled, then finished).
/// Returns the notices the runs presumed delivered.
async fn finish(app: &TestApp) -> usize {
    app.faults().dynamodb.clear();
    app.faults().aws.clear();
    let mut presumed = 0;
    for at in ["2026-04-01T00:16:00Z", "2026-04-01T00:20:00Z", "2026-04-02T00:15:00Z"] {
        app.set_now(at);
        let summary = usage_job::run(&app.deps, app.now()).await;
        assert!(summary.complete(), "{summary:?}");
        presumed += summary.presumed_delivered;
    }
    presumed
}

async fn emails_per_org(app: &TestApp, orgs: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for org in orgs {
        out.push(app.emails(org).await.len());
    }
    out
}

/// Kills the child once it has sent `before` emails and `then` has set up
/// the moment; checks it really was mid-run.
async fn kill_mid_run(app: &TestApp, before: usize, then: impl std::future::Future<Output = ()>) {
    let mut child = spawn_child(app, "2026-04-01T00:15:00Z");
    until_emails(app, before).await;
    then.await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let sent = app.faults().aws.accepted("outbound-emails").len();
    assert!(sent < ORGS, "killed mid-run ({sent} of {ORGS} emails sent)");
}

async fn assert_everything_once(app: &TestApp, orgs: &[String]) {
    assert_eq!(emails_per_org(app, orgs).await, vec![1; orgs.len()], "every org's email exactly once");
    let closes = period_closes(app);
    for org in orgs {
        assert_eq!(closes.get(org), Some(&1), "{org}: one period close: {closes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_emails_are_delivered_but_unconfirmed_then_run_again_sends_everything_once() {
    let app = TestApp::with_faults("2026-03-31T20:00:00Z").await;
    let orgs = setup(&app).await;
    kill_mid_run(&app, ORGS / 4, async {
        // SES takes the next emails, but its answers are held back...
        let held = app.faults().aws.accepted("outbound-emails").len();
        app.faults().aws.inject(Rule::on("outbound-emails", Fault::DelayResponse(Duration::from_secs(5))));
        until_emails(&app, held + 4).await;
        // ...and the store stops answering, so that no other task is
        // between recording `sending` and its call when the kill comes.
        app.faults().dynamodb.inject(Rule::all(Fault::Stall));
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    let presumed = finish(&app).await;
    assert!(presumed >= 4, "the unconfirmed emails were presumed delivered ({presumed})");
    assert_everything_once(&app, &orgs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_the_store_stalls_then_run_again_sends_everything_once() {
    let app = TestApp::with_faults("2026-03-31T20:00:00Z").await;
    let orgs = setup(&app).await;
    kill_mid_run(&app, ORGS / 4, async {
        // The store stops answering: calls to SES and EventBridge under way
        // finish, and every task then waits on DynamoDB, mid-claim or mid-mark.
        app.faults().dynamodb.inject(Rule::all(Fault::Stall));
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    finish(&app).await;
    assert_everything_once(&app, &orgs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_a_moment_of_its_choosing_then_run_again_sends_nothing_twice() {
    let app = TestApp::with_faults("2026-03-31T20:00:00Z").await;
    let orgs = setup(&app).await;
    kill_mid_run(&app, ORGS / 2, async {}).await;

    let presumed = finish(&app).await;
    let emails = emails_per_org(&app, &orgs).await;
    assert!(emails.iter().all(|n| *n <= 1), "no email twice: {emails:?}");
    let closes = period_closes(&app);
    assert!(closes.values().all(|n| *n == 1), "no period close twice: {closes:?}");
    // Anything missing was in flight at the kill, and is reported as such.
    let missing = emails.iter().filter(|n| **n == 0).count() + (ORGS - closes.len());
    assert!(missing <= presumed, "{missing} missing, {presumed} presumed delivered");
}
