//! Replays the API Gateway events in `events/` (the files `sam local invoke -e`
//! takes) through each function's own handler, in the order a client would.

use lambda_http::{Body, Request, Response};
use quota_shared::Deps;
use quota_tests::{TestApp, Value};

type Handler = for<'a> fn(&'a Deps, Request) -> futures::future::BoxFuture<'a, Response<Body>>;

fn check_quota(d: &Deps, r: Request) -> futures::future::BoxFuture<'_, Response<Body>> {
    Box::pin(check_quota::handle(d, r))
}
fn increment_usage(d: &Deps, r: Request) -> futures::future::BoxFuture<'_, Response<Body>> {
    Box::pin(increment_usage::handle(d, r))
}
fn get_usage(d: &Deps, r: Request) -> futures::future::BoxFuture<'_, Response<Body>> {
    Box::pin(get_usage::handle(d, r))
}
fn manage_orgs(d: &Deps, r: Request) -> futures::future::BoxFuture<'_, Response<Body>> {
    Box::pin(manage_orgs::handle(d, r))
}
fn admin_reset(d: &Deps, r: Request) -> futures::future::BoxFuture<'_, Response<Body>> {
    Box::pin(admin_reset::handle(d, r))
}

#[tokio::test]
async fn sample_events_replay_through_their_functions() {
    let app = TestApp::new("2026-11-25T06:00:00Z").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let steps: &[(&str, Handler, u16)] = &[
        ("health.json", get_usage, 200),
        ("put-org.json", manage_orgs, 201),
        ("put-org.json", manage_orgs, 200),
        ("get-org.json", manage_orgs, 200),
        ("plans.json", get_usage, 200),
        ("consume.json", increment_usage, 200),
        ("consume.json", increment_usage, 200),
        ("check.json", check_quota, 200),
        ("check-many.json", check_quota, 200),
        ("set-usage.json", increment_usage, 200),
        ("release.json", increment_usage, 200),
        ("get-usage.json", get_usage, 200),
        ("history.json", get_usage, 200),
        ("admin-reset.json", admin_reset, 200),
        ("admin-audit.json", admin_reset, 200),
    ];
    let mut last = Value::Null;
    for (file, handler, status) in steps {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("fixture");
        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let response = handler(&app.deps, request).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        assert_eq!(response.status(), *status, "{file}: {body}");
        last = body;
    }
    let actions: Vec<&str> =
        last["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(actions.contains(&"reset") && actions.contains(&"usage_set") && actions.contains(&"org_created"));
    // The consume was sent twice with one Idempotency-Key: counted once
    // (the audit's reset entry shows what was reset).
    let reset = last["entries"].as_array().unwrap().iter().find(|e| e["action"] == "reset").unwrap();
    assert_eq!(reset["before"], 1);
}

/// The usage-job Lambda takes both the schedule's event and the admin route's
/// API Gateway event.
#[tokio::test]
async fn the_job_function_takes_the_schedule_and_the_admin_route() {
    let app = TestApp::new("2026-11-25T06:00:00Z").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let read =
        |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{f}")).unwrap()).unwrap() };
    let scheduled = usage_job::handle_event(&app.deps, read("scheduled-daily.json"), Default::default())
        .await
        .expect("a complete run");
    assert_eq!(scheduled["failures"], 0, "{scheduled}");
    assert!(scheduled["orgsSeen"].is_number());
    let http = usage_job::handle_event(&app.deps, read("run-daily-job.json"), Default::default())
        .await
        .expect("an HTTP answer");
    assert_eq!(http["statusCode"], 200, "{http}");
    let body: Value = serde_json::from_str(http["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["failures"], 0);
    let mut anonymous = read("run-daily-job.json");
    anonymous["requestContext"].as_object_mut().unwrap().remove("authorizer");
    assert_eq!(
        usage_job::handle_event(&app.deps, anonymous, Default::default()).await.expect("an HTTP answer")["statusCode"],
        401
    );
}

#[tokio::test]
async fn a_function_answers_404_for_another_functions_route() {
    let app = TestApp::new("2026-11-25T06:00:00Z").await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/consume.json")).unwrap();
    let response = get_usage(&app.deps, lambda_http::request::from_str(&text).unwrap()).await;
    assert_eq!(response.status(), 404);
}
