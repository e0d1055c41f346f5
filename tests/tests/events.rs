//! Replays the API Gateway events in `events/` (the files `sam local invoke -e`
//! takes) through each function's own handler, in the order a client would.

use lambda_http::{Body, Request, Response};
use quota_shared::Deps;
use quota_tests::{TestApp, Value, json};

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

/// The ids the reservation and grant samples name. The replay sends them
/// with the ids the service gave instead (as a client would), since only an
/// id it issued names a reservation or a grant.
const SAMPLE_RESERVATION: &str = "rsv_c3RvcmFnZS41MjQyODgwLjE3OTU1ODczMDAuM2M5YTFmMGU3YjJkNDhjNmE1ZTFmOWQzYjdjMjBhODQ";
const SAMPLE_GRANT: &str = "grt_5f1c0a9e3b7d4c2a8e6f0b1d";

/// How a step sends its sample: as it is, or without one of its headers.
#[derive(Clone, Copy)]
enum Sent {
    AsIs,
    Without(&'static str),
}
use Sent::{AsIs, Without};

#[tokio::test]
async fn sample_events_replay_through_their_functions() {
    let app = TestApp::new("2026-11-25T06:00:00Z").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let steps: &[(&str, Handler, u16, Sent)] = &[
        ("health.json", get_usage, 200, AsIs),
        ("put-org.json", manage_orgs, 201, AsIs),
        ("put-org.json", manage_orgs, 200, AsIs),
        ("get-org.json", manage_orgs, 200, AsIs),
        ("plans.json", get_usage, 200, AsIs),
        ("features.json", get_usage, 200, AsIs),
        ("feature.json", get_usage, 200, AsIs),
        ("consume.json", increment_usage, 200, AsIs),
        ("consume.json", increment_usage, 200, AsIs),
        ("check.json", check_quota, 200, AsIs),
        ("check-many.json", check_quota, 200, AsIs),
        ("set-usage.json", increment_usage, 200, AsIs),
        ("release.json", increment_usage, 200, AsIs),
        // Sent twice with one Idempotency-Key: one reservation.
        ("reserve.json", increment_usage, 201, AsIs),
        ("reserve.json", increment_usage, 201, AsIs),
        ("commit.json", increment_usage, 200, AsIs),
        ("commit.json", increment_usage, 200, AsIs),
        ("cancel-reservation.json", increment_usage, 409, AsIs),
        // Without the key, a new reservation: released, twice.
        ("reserve.json", increment_usage, 201, Without("idempotency-key")),
        ("cancel-reservation.json", increment_usage, 200, AsIs),
        ("cancel-reservation.json", increment_usage, 200, AsIs),
        ("commit.json", increment_usage, 409, AsIs),
        ("get-usage.json", get_usage, 200, AsIs),
        ("history.json", get_usage, 200, AsIs),
        ("admin-reset.json", admin_reset, 200, AsIs),
        ("add-grant.json", admin_reset, 201, AsIs),
        ("revoke-grant.json", admin_reset, 200, AsIs),
        ("revoke-grant.json", admin_reset, 200, AsIs),
        ("admin-audit.json", admin_reset, 200, AsIs),
    ];
    let (mut reservation, mut grant) = (SAMPLE_RESERVATION.to_string(), SAMPLE_GRANT.to_string());
    let mut answers: Vec<(&str, Value, bool)> = Vec::new();
    for (file, handler, status, sent) in steps {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("fixture");
        let text = text.replace(SAMPLE_RESERVATION, &reservation).replace(SAMPLE_GRANT, &grant);
        let mut request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        if let Without(header) = sent {
            assert!(request.headers_mut().remove(*header).is_some(), "{file} has {header}");
        }
        let response = handler(&app.deps, request).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        assert_eq!(response.status(), *status, "{file}: {body}");
        if let Some(id) = body["reservationId"].as_str().filter(|_| *file == "reserve.json") {
            reservation = id.to_string();
        }
        if let Some(id) = body["grant"]["id"].as_str() {
            grant = id.to_string();
        }
        answers.push((file, body, response.headers().contains_key("idempotent-replayed")));
    }
    let of = |file: &str| -> Vec<(&Value, bool)> {
        answers.iter().filter(|(f, ..)| *f == file).map(|(_, body, replayed)| (body, *replayed)).collect()
    };

    // The org's own value for a feature wins over its plan's.
    let feature = of("feature.json")[0].0;
    assert_eq!(*feature, serde_json::json!({ "feature": "webhooks", "enabled": true, "source": "override" }));
    assert_eq!(of("features.json")[0].0["features"]["sso"]["source"], "plan");

    // The keyed reserve was replayed: the same reservation, held once; the
    // commit ended it once and its repeat answered the first outcome.
    let reserves = of("reserve.json");
    assert_eq!(reserves[1].0["reservationId"], reserves[0].0["reservationId"]);
    assert_eq!(reserves.iter().map(|(_, replayed)| *replayed).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(reserves[1].0["decision"]["usage"]["held"], 5_242_880);
    assert_ne!(reserves[2].0["reservationId"], reserves[0].0["reservationId"]);
    let commits = of("commit.json");
    assert_eq!((commits[0].0["status"].as_str(), commits[0].0["used"].as_i64()), (Some("committed"), Some(4_194_304)));
    assert_eq!(commits[0].0["usage"]["held"], 0);
    assert_eq!(commits[1].0, commits[0].0, "a repeat answers the first outcome");
    assert_eq!(commits[2].0["error"]["code"], "RESERVATION_RELEASED");
    let cancels = of("cancel-reservation.json");
    assert_eq!(cancels[0].0["error"]["code"], "RESERVATION_COMMITTED");
    assert_eq!((cancels[1].0["status"].as_str(), cancels[1].0["used"].as_i64()), (Some("released"), Some(0)));
    assert_eq!(cancels[2].0, cancels[1].0);

    // The grant raised the effective limit, and its revocation took it back.
    let added = of("add-grant.json")[0].0;
    assert_eq!((added["usage"]["limit"].as_i64(), added["usage"]["planLimit"].as_i64()), (Some(150), Some(100)));
    assert_eq!(added["grant"]["expiresAt"], "2026-11-30T23:00:00Z", "the end of the period, Copenhagen time");
    let revoked = of("revoke-grant.json");
    assert_eq!(revoked[0].0["usage"]["limit"], 100);
    assert_eq!(revoked[1], (revoked[0].0, true), "a repeat answers the first revoke, marked a replay");

    let last = &answers.last().expect("steps").1;
    let mut actions: Vec<&str> =
        last["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["grant_added", "grant_revoked", "org_created", "reset", "usage_set"]);
    // The consume was sent twice with one Idempotency-Key: counted once
    // (the audit's reset entry shows what was reset).
    let reset = last["entries"].as_array().unwrap().iter().find(|e| e["action"] == "reset").unwrap();
    assert_eq!(reset["before"], 1);
    // The committed upload's bytes are used; nothing is held any more.
    let usage = of("get-usage.json")[0].0;
    let storage = usage["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "storage").unwrap();
    assert_eq!((storage["used"].as_i64(), storage["held"].as_i64()), (Some(4_194_304), Some(0)));
}

/// `events/scheduled-daily.json` is what the deployed schedule sends: the
/// schedule's `Input` in `template.yaml`, filled in as Scheduler fills it.
#[test]
fn the_schedules_fixture_is_what_the_template_makes_scheduler_send() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/scheduled-daily.json")).unwrap()).unwrap();
    let sent = quota_tests::aws::scheduled_invocation(&quota_tests::aws::Attempt {
        scheduled_time: "2026-11-26T00:15:00Z",
        number: 1,
        execution_id: "d32c5kddcf5bb8c3",
    });
    assert_eq!(fixture, sent);
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

/// The key paths of a JSON value (`requestContext.http.method`, …).
fn key_paths(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            out.insert(path.clone());
            // Claims and headers are free-form maps: their keys are data.
            if !["headers", "claims", "pathParameters", "queryStringParameters", "detail"].contains(&k.as_str()) {
                key_paths(v, &path, out);
            }
        }
    }
}

/// Every fixture in `events/` is what AWS sends, not what the handlers
/// happen to read: each API Gateway event is an `aws_lambda_events`
/// `ApiGatewayV2httpRequest` with no field that type does not know, names
/// the route `template.yaml` declares for its method and path (route key
/// and path parameters, as the gateway fills them), and lists the token's
/// scopes as the JWT authorizer does; the EventBridge ones are
/// `EventBridgeEvent`s (the schedule's is built from the template itself,
/// above). `docs/events.md` says where each shape comes from.
#[test]
fn every_fixture_is_shaped_as_aws_sends_it() {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use aws_lambda_events::eventbridge::EventBridgeEvent;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let fixture: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
        if fixture.get("Records").is_some() {
            // The channel queue's batch: SQS's record (`sam local generate-event sqs
            // receive-message`), its body the event as EventBridge puts it in the queue.
            use aws_lambda_events::sqs::SqsEvent;
            let batch: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is an SQS event: {e}"));
            let (mut sent, mut known) = (Default::default(), Default::default());
            key_paths(&fixture, "", &mut sent);
            key_paths(&serde_json::to_value(&batch).unwrap(), "", &mut known);
            let unknown: Vec<&String> = sent.difference(&known).collect();
            assert!(unknown.is_empty(), "{name}: fields AWS's type does not have: {unknown:?}");
            for record in &batch.records {
                let body = record.body.as_deref().unwrap();
                let event: EventBridgeEvent<Value> =
                    serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(event.source, "quota-service", "{name}");
                assert!(quota_shared::domain::events::EventKind::parse(&event.detail_type).is_some(), "{name}");
            }
            continue;
        }
        if fixture.get("requestContext").is_none() {
            let event: EventBridgeEvent<Value> =
                serde_json::from_value(fixture).unwrap_or_else(|e| panic!("{name} is an EventBridge event: {e}"));
            assert!(["aws.scheduler", "quota-service.job"].contains(&event.source.as_str()), "{name}");
            continue;
        }
        let typed: ApiGatewayV2httpRequest =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is an HTTP API event: {e}"));
        let (mut sent, mut known) = (Default::default(), Default::default());
        key_paths(&fixture, "", &mut sent);
        key_paths(&serde_json::to_value(&typed).unwrap(), "", &mut known);
        let unknown: Vec<&String> = sent.difference(&known).collect();
        assert!(unknown.is_empty(), "{name}: fields AWS's type does not have: {unknown:?}");

        let method = fixture["requestContext"]["http"]["method"].as_str().unwrap();
        let raw_path = fixture["rawPath"].as_str().unwrap();
        let method: lambda_http::http::Method = method.parse().unwrap();
        let (route_key, params) =
            quota_shared::api::route_key(&method, raw_path).unwrap_or_else(|| panic!("{name}: a declared route"));
        assert_eq!(fixture["routeKey"], route_key, "{name}");
        assert_eq!(fixture["requestContext"]["routeKey"], route_key, "{name}");
        let want: serde_json::Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        assert_eq!(fixture.get("pathParameters").cloned().unwrap_or(json!({})), Value::Object(want), "{name}");
        let jwt = &fixture["requestContext"]["authorizer"]["jwt"];
        if !jwt.is_null() {
            let scopes: Vec<&str> = jwt["claims"]["scope"].as_str().unwrap_or_default().split_whitespace().collect();
            assert_eq!(jwt["scopes"], json!(scopes), "{name}: the authorizer lists the token's scopes");
        }
    }
    assert!(seen >= 20, "{seen} fixtures");
}
