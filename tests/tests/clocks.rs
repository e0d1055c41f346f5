//! Two servers whose clocks sit on either side of a period boundary, as
//! Lambda instances' clocks do (tens of milliseconds apart): periods only
//! move forward, nothing is closed before it has ended, and the org stays
//! usable whatever order the requests arrive in.

use lambda_http::http::Method;
use quota_shared::{Clock, Deps};
use quota_tests::{ADMIN, APP, TestApp, json};

/// The handlers' dependencies with a clock of their own.
fn with_clock(app: &TestApp, at: &str) -> Deps {
    Deps { clock: Clock::fixed(at.parse().unwrap()), ..app.deps.clone() }
}

async fn consume_via(app: &TestApp, deps: &Deps, org: &str, amount: i64) -> quota_tests::Reply {
    let path = format!("/v1/orgs/{org}/usage/conversations/consume");
    app.send_via(deps, Method::POST, &path, Some(&json!({ "amount": amount }).to_string()), &[], &APP).await
}

#[tokio::test]
async fn a_late_refusal_does_not_roll_the_counter_back_or_lock_the_org() {
    // A free org created on 25 October: its trial ended on 24 November.
    let app = TestApp::new("2026-10-25T10:00:00Z").await;
    app.org("skew", json!({ "plan": "free" })).await;
    app.set_now("2026-11-10T10:00:00Z");
    assert_eq!(app.consume("skew", "conversations", 4).await.status, 200);

    // A server already in December refuses (trial over), closing November.
    app.set_now("2026-12-01T00:00:01Z");
    assert_eq!(app.consume("skew", "conversations", 1).await.status, 402);
    // A server whose clock still says November refuses the same org.
    let late = with_clock(&app, "2026-11-30T23:59:59Z");
    let r = consume_via(&app, &late, "skew", 1).await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["usage"]["period"]["start"], "2026-12-01T00:00:00Z", "December is current for it too");

    // The org is usable with the December clock: an upgrade, then consumes.
    let put = app.put("/v1/orgs/skew", json!({ "plan": "basic" }), &ADMIN).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let r = app.consume("skew", "conversations", 2).await;
    assert_eq!((r.status, r.used()), (200, 2), "{}", r.body);
    assert_eq!(r.body["usage"]["period"]["start"], "2026-12-01T00:00:00Z");

    // October and November are closed, once each; December is not.
    app.set_now("2026-12-01T00:15:00Z");
    app.run_job().await;
    let closed: Vec<(String, i64)> = app
        .events("skew")
        .into_iter()
        .filter(|(k, _)| k == "UsagePeriodClosed")
        .map(|(_, d)| (d["period"]["start"].as_str().unwrap().to_string(), d["resources"][0]["used"].as_i64().unwrap()))
        .collect();
    assert_eq!(closed, [("2026-10-01T00:00:00Z".to_string(), 0), ("2026-11-01T00:00:00Z".to_string(), 4)]);
}

#[tokio::test]
async fn a_late_consume_counts_in_the_current_period_and_reads_show_it() {
    let app = TestApp::new("2026-11-20T10:00:00Z").await;
    app.org("lag", json!({ "plan": "basic" })).await;
    assert_eq!(app.consume("lag", "conversations", 90).await.status, 200);
    app.set_now("2026-12-01T00:00:00.050Z");
    assert_eq!(app.consume("lag", "conversations", 1).await.used(), 1, "December starts from 0");

    let late = with_clock(&app, "2026-11-30T23:59:59.990Z");
    let r = consume_via(&app, &late, "lag", 2).await;
    assert_eq!((r.status, r.used()), (200, 3), "counted in December, not in a reopened November: {}", r.body);
    let usage = app.send_via(&late, Method::GET, "/v1/orgs/lag/usage", None, &[], &APP).await;
    let conversations = usage.body["resources"].as_array().unwrap().iter().find(|u| u["resource"] == "conversations");
    assert_eq!(conversations.unwrap()["used"], 3, "the late reader sees December's count");
    let set =
        app.send_via(&late, Method::PUT, "/v1/orgs/lag/usage/conversations", Some(r#"{"value":10}"#), &[], &APP).await;
    assert_eq!(set.status, 200, "{}", set.body);
    let reset = app
        .send_via(&late, Method::POST, "/v1/admin/orgs/lag/reset", Some(r#"{"reason":"skew test"}"#), &[], &ADMIN)
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let update = app.send_via(&late, Method::PUT, "/v1/orgs/lag", Some(r#"{"plan":"growth"}"#), &[], &ADMIN).await;
    assert_eq!(update.status, 200, "{}", update.body);

    assert_eq!(app.consume("lag", "conversations", 5).await.used(), 5);
    app.run_job().await;
    let closed: Vec<_> = app.events("lag").into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
    assert_eq!(closed.len(), 1, "November closed once: {closed:?}");
    assert_eq!(closed[0].1["resources"][0]["used"], 90);
}
