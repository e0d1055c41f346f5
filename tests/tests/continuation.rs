//! The daily job over a table larger than one invocation's budget: a run
//! hands over where each segment stands and goes on, part by part, in other
//! invocations; every org is processed once per run, and no part is lost or
//! run twice to completion.

use std::time::Instant;

use quota_tests::{TestApp, json};
use serde_json::Value;

const ORGS: usize = 60;

async fn orgs(app: &TestApp) -> Vec<String> {
    let orgs: Vec<String> = (0..ORGS).map(|i| app.unique(&format!("part{i:02}"))).collect();
    for org in &orgs {
        app.org(org, json!({ "plan": "basic" })).await;
    }
    orgs
}

/// A budget already spent: each part works one page per segment.
fn spent(page_size: i32) -> usage_job::Options {
    usage_job::Options { deadline: Some(Instant::now()), page_size }
}

fn continued(app: &TestApp) -> Vec<Value> {
    app.deps
        .events
        .published()
        .into_iter()
        .filter(|(k, _)| k.detail_type() == "DailyJobContinued")
        .map(|(_, d)| d)
        .collect()
}

/// The event EventBridge delivers for a hand-over (`events/`), for `detail`.
fn delivery(detail: &Value) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/daily-job-continued.json"));
    let mut event: Value = serde_json::from_str(&text.unwrap()).unwrap();
    event["detail"] = detail.clone();
    event
}

#[tokio::test]
async fn a_run_out_of_budget_hands_over_and_is_finished_part_by_part() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    orgs(&app).await;
    let first = usage_job::run_with(&app.deps, app.now(), spent(5)).await;
    assert!(first.run.continued && !first.run.resumed && first.complete(), "{first:?}");
    assert_eq!(first.run.part, 1);
    assert!(first.orgs_seen > 0 && first.orgs_seen < ORGS, "{first:?}");

    // Each hand-over is announced once; each delivery resumes the run.
    let mut seen = first.orgs_seen;
    let mut parts = vec![first.run.part];
    loop {
        let events = continued(&app);
        assert_eq!(events.len(), parts.len(), "one announcement per hand-over: {events:?}");
        let last = events.last().unwrap().clone();
        assert_eq!(
            (last["runId"].as_str(), last["part"].as_u64()),
            (Some(first.run.id.as_str()), Some(parts.len() as u64 + 1))
        );
        // Lambda's deadline for this invocation is already near: one page.
        let reply = usage_job::handle_event(&app.deps, delivery(&last), spent(5)).await.expect("complete");
        let summary: usage_job::Summary = serde_json::from_value(reply).expect("a summary");
        assert!(summary.run.resumed && summary.complete(), "{summary:?}");
        assert_eq!(summary.run.id, first.run.id);
        seen += summary.orgs_seen;
        parts.push(summary.run.part);
        if !summary.run.continued {
            break;
        }
    }
    assert_eq!(seen, ORGS, "every org once, over {} parts", parts.len());
    assert_eq!(parts, (1..=parts.len() as u32).collect::<Vec<_>>());
    assert!(parts.len() >= 3, "{parts:?}");

    // A late duplicate of any announcement finds the run finished.
    let again =
        usage_job::handle_event(&app.deps, delivery(&continued(&app)[0]), Default::default()).await.expect("no-op");
    assert_eq!(again, json!({ "resumed": false, "run": first.run.id }));
    // Every org has today's snapshot.
    let snapped = app.deps.store.history(&org_id(&app, 7), "conversations", today(&app), today(&app)).await.unwrap();
    assert_eq!(snapped.len(), 1);
}

#[tokio::test]
async fn a_part_delivered_twice_is_worked_twice_but_handed_over_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    orgs(&app).await;
    let first = usage_job::run_with(&app.deps, app.now(), spent(5)).await;
    let announced = continued(&app)[0].clone();
    // Two deliveries of the same announcement, at once.
    let (a, b) = tokio::join!(
        usage_job::handle_event(&app.deps, delivery(&announced), spent(5)),
        usage_job::handle_event(&app.deps, delivery(&announced), spent(5)),
    );
    let (a, b): (usage_job::Summary, usage_job::Summary) =
        (serde_json::from_value(a.unwrap()).unwrap(), serde_json::from_value(b.unwrap()).unwrap());
    assert_eq!((a.run.part, b.run.part), (2, 2));
    assert_eq!(continued(&app).len(), 2, "part 3 announced once: {:?}", continued(&app));
    // Then the rest, unbounded: every org seen, none failed.
    let rest = usage_job::resume(&app.deps, &first.run.id, usage_job::Options::default()).await.unwrap().unwrap();
    assert!(rest.complete() && !rest.run.continued, "{rest:?}");
    assert_eq!(first.orgs_seen + a.orgs_seen + rest.orgs_seen, ORGS, "{first:?} {a:?} {rest:?}");
    assert_eq!(a.orgs_seen, b.orgs_seen, "the duplicate did the same part");
}

/// When announcing the next part fails, the invocation fails (so Lambda
/// retries it), and its retry does the next part itself.
#[tokio::test]
async fn a_hand_over_that_cannot_be_announced_is_done_by_the_retry() {
    use quota_tests::{Fault, Rule};
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    orgs(&app).await;
    let first = usage_job::run_with(&app.deps, app.now(), spent(5)).await;
    let part2 = continued(&app)[0].clone();
    app.faults().aws.inject(Rule::on("PutEvents", Fault::InternalError));
    let failed = usage_job::handle_event(&app.deps, delivery(&part2), spent(5)).await.expect_err("incomplete");
    let second = failed.0;
    assert!(second.run.continued && second.run.hand_over_failed, "{second:?}");
    assert_eq!(continued(&app).len(), 1, "part 3 was not announced");
    app.faults().aws.clear();

    // Lambda delivers part 2's event again: the record says part 3.
    let retried = usage_job::handle_event(&app.deps, delivery(&part2), Default::default()).await.expect("complete");
    let retried: usage_job::Summary = serde_json::from_value(retried).unwrap();
    assert_eq!((retried.run.part, retried.run.continued), (3, false), "{retried:?}");
    assert_eq!(first.orgs_seen + second.orgs_seen + retried.orgs_seen, ORGS);
    let again = usage_job::handle_event(&app.deps, delivery(&part2), Default::default()).await.unwrap();
    assert_eq!(again["resumed"], false, "finished");
}

fn org_id(app: &TestApp, i: usize) -> quota_shared::domain::org::OrgId {
    quota_shared::domain::org::OrgId::parse(&app.unique(&format!("part{i:02}"))).unwrap()
}

fn today(app: &TestApp) -> chrono::NaiveDate {
    app.now().date_naive()
}
