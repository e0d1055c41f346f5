//! Every error code of the contract, and the auth matrix.

use lambda_http::http::Method;
use quota_tests::{ADMIN, APP, Auth, TestApp, json};

async fn app() -> TestApp {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("acme", json!({ "plan": "free" })).await;
    app
}

fn assert_error(reply: &quota_tests::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.code(), Some(code), "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().expect("message");
    assert!(!message.is_empty());
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn invalid_request() {
    let app = app().await;
    let consume = "/v1/orgs/acme/usage/conversations/consume";
    for body in [
        "{",
        "[]",
        r#"{"amount":0}"#,
        r#"{"amount":-1}"#,
        r#"{"amount":1.5}"#,
        r#"{"amount":"1"}"#,
        r#"{"amount":9007199254740992}"#,
        r#"{"amount":1,"extra":true}"#,
        r#"{"amount":null}"#,
        "[5]",
        "5",
        r#""amount""#,
    ] {
        let r = app.send(Method::POST, consume, Some(body), &[], &APP).await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    for q in ["amount=-1", "amount=x", "amount=1.5", "amount="] {
        let r = app.get(&format!("/v1/orgs/acme/usage/conversations/check?{q}"), &APP).await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    for body in [json!({}), json!({ "value": -1 }), json!({ "value": "3" })] {
        assert_error(&app.put("/v1/orgs/acme/usage/contacts", body, &APP).await, 400, "INVALID_REQUEST");
    }
    assert_error(&app.send(Method::PUT, "/v1/orgs/acme/usage/contacts", None, &[], &APP).await, 400, "INVALID_REQUEST");
    for body in [json!({}), json!({ "resources": {} }), json!({ "resources": { "users": -1 } })] {
        assert_error(&app.post("/v1/orgs/acme/check", body, &APP).await, 400, "INVALID_REQUEST");
    }
    for body in [
        json!({ "plan": "gold" }),
        json!({ "anchorDay": 0 }),
        json!({ "timezone": "Nowhere/City" }),
        json!({ "locale": "fr" }),
        json!({ "limits": { "users": -5 } }),
        json!({ "contacts": { "owner": "nope" } }),
        json!({ "trialEndsAt": "soon" }),
        json!({ "unknown": 1 }),
    ] {
        let r = app.put("/v1/orgs/acme", body.clone(), &ADMIN).await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    // A rejected update changed nothing.
    assert_eq!(app.get("/v1/orgs/acme", &APP).await.body["plan"], "free");
}

/// JSON has one number type: `2.0` is the integer 2, as JSON Schema reads it.
#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    let app = app().await;
    let r = app.send(Method::POST, "/v1/orgs/acme/usage/tasks/consume", Some(r#"{"amount":2.0}"#), &[], &APP).await;
    assert_eq!((r.status, r.used()), (200, 2), "{}", r.body);
    let r = app.send(Method::PUT, "/v1/orgs/acme/usage/tasks", Some(r#"{"value":5e0}"#), &[], &APP).await;
    assert_eq!((r.status, r.used()), (200, 5), "{}", r.body);
    let r = app.send(Method::PUT, "/v1/orgs/acme", Some(r#"{"anchorDay":15.0}"#), &[], &ADMIN).await;
    assert_eq!((r.status, r.body["anchorDay"].clone()), (200, json!(15)), "{}", r.body);
}

#[tokio::test]
async fn invalid_org_id() {
    let app = app().await;
    let long = "a".repeat(65);
    for org in ["bad!id", "a.b", long.as_str(), "%41cme"] {
        let r = app.get(&format!("/v1/orgs/{org}/usage"), &APP).await;
        assert_error(&r, 400, "INVALID_ORG_ID");
    }
    assert_error(&app.put("/v1/orgs/bad$id", json!({}), &ADMIN).await, 400, "INVALID_ORG_ID");
}

#[tokio::test]
async fn not_releasable() {
    let app = app().await;
    assert_error(&app.release("acme", "conversations", 1).await, 400, "NOT_RELEASABLE");
}

#[tokio::test]
async fn org_not_found() {
    let app = app().await;
    assert_error(&app.consume("ghost", "conversations", 1).await, 404, "ORG_NOT_FOUND");
    assert_error(&app.consume_with_key("ghost", "conversations", 1, "k").await, 404, "ORG_NOT_FOUND");
    assert_error(&app.release("ghost", "contacts", 1).await, 404, "ORG_NOT_FOUND");
    assert_error(&app.get("/v1/orgs/ghost", &APP).await, 404, "ORG_NOT_FOUND");
    assert_error(&app.get("/v1/orgs/ghost/usage", &APP).await, 404, "ORG_NOT_FOUND");
    assert_error(&app.get("/v1/orgs/ghost/usage/users/check", &APP).await, 404, "ORG_NOT_FOUND");
    assert_error(&app.put("/v1/orgs/ghost/usage/users", json!({ "value": 1 }), &APP).await, 404, "ORG_NOT_FOUND");
    let many = app.post("/v1/orgs/ghost/check", json!({ "resources": { "users": 1 } }), &APP).await;
    assert_error(&many, 404, "ORG_NOT_FOUND");
    // Nothing was written for the unknown org.
    assert_error(&app.get("/v1/orgs/ghost", &APP).await, 404, "ORG_NOT_FOUND");
}

#[tokio::test]
async fn unknown_resource() {
    let app = app().await;
    assert_error(&app.consume("acme", "widgets", 1).await, 404, "UNKNOWN_RESOURCE");
    assert_error(&app.get("/v1/orgs/acme/usage/widgets/check", &APP).await, 404, "UNKNOWN_RESOURCE");
    let many = app.post("/v1/orgs/acme/check", json!({ "resources": { "widgets": 1 } }), &APP).await;
    assert_error(&many, 404, "UNKNOWN_RESOURCE");
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let app = app().await;
    assert_error(&app.get("/v1/nothing", &APP).await, 404, "NOT_FOUND");
    assert_error(&app.get("/v2/orgs/acme", &APP).await, 404, "NOT_FOUND");
    assert_error(&app.get("/", &Auth::None).await, 404, "NOT_FOUND");
    let r = app.send(Method::DELETE, "/v1/orgs/acme", None, &[], &ADMIN).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "PUT, GET");
    let r = app.get("/v1/orgs/acme/usage/conversations/consume", &APP).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST");
}

#[tokio::test]
async fn payload_too_large() {
    let app = app().await;
    let big = format!(r#"{{"amount":1,"pad":"{}"}}"#, "x".repeat(64 * 1024));
    let r = app.send(Method::POST, "/v1/orgs/acme/usage/conversations/consume", Some(&big), &[], &APP).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.resource_usage("acme", "conversations").await["used"], 0);
}

#[tokio::test]
async fn store_unavailable_answers_503_with_retry_after_and_no_internals() {
    // A store that cannot be reached: nothing listens on port 9 of loopback.
    let app = app().await;
    let sdk = aws_config::from_env()
        .http_client(quota_shared::clients::http_client())
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let broken = quota_shared::Deps {
        store: quota_shared::store::Store::new(aws_sdk_dynamodb::Client::new(&sdk), "nowhere"),
        ..app.deps.clone()
    };
    let path = "/v1/orgs/acme/usage/conversations/consume";
    let r = app.send_via(&broken, Method::POST, path, None, &[], &APP).await;
    assert_error(&r, 503, "STORE_UNAVAILABLE");
    assert_eq!(r.headers["retry-after"], "1");
    let body = r.body;
    let text = body.to_string();
    for leak in ["127.0.0.1", "dispatch", "Error", "connect", "nowhere"] {
        assert!(!text.contains(leak), "internal detail {leak:?} leaked: {text}");
    }
}

/// The auth matrix: who may call what.
#[tokio::test]
async fn auth_matrix() {
    let app = app().await;
    app.org("other", json!({})).await;
    let reader = Auth::Token { sub: "r", scope: "quota:read", org: None };
    let writer = Auth::Token { sub: "w", scope: "quota:write", org: None };
    let acme_app = Auth::Token { sub: "acme-app", scope: "quota:read quota:write", org: Some("acme") };
    let acme_admin = Auth::Token { sub: "acme-admin", scope: "quota:admin", org: Some("acme") };
    let no_scope = Auth::Token { sub: "nobody", scope: "profile email", org: None };

    let routes: &[(Method, &str, Option<&str>)] = &[
        (Method::GET, "/v1/plans", None),
        (Method::GET, "/v1/orgs/acme", None),
        (Method::PUT, "/v1/orgs/acme", Some("{}")),
        (Method::GET, "/v1/orgs/acme/usage", None),
        (Method::GET, "/v1/orgs/acme/usage/users/check", None),
        (Method::POST, "/v1/orgs/acme/check", Some(r#"{"resources":{"users":1}}"#)),
        (Method::POST, "/v1/orgs/acme/usage/tasks/consume", Some("{}")),
        (Method::POST, "/v1/orgs/acme/usage/tasks/release", Some("{}")),
        (Method::PUT, "/v1/orgs/acme/usage/tasks", Some(r#"{"value":0}"#)),
    ];
    // (auth, expected status per route, in the order above)
    let matrix: Vec<(&Auth, [u16; 9])> = vec![
        (&Auth::None, [401, 401, 401, 401, 401, 401, 401, 401, 401]),
        (&no_scope, [403, 403, 403, 403, 403, 403, 403, 403, 403]),
        (&reader, [200, 200, 403, 200, 200, 200, 403, 403, 403]),
        (&writer, [403, 403, 403, 403, 403, 403, 200, 200, 200]),
        (&APP, [200, 200, 403, 200, 200, 200, 200, 200, 200]),
        (&acme_app, [200, 200, 403, 200, 200, 200, 200, 200, 200]),
        (&acme_admin, [200, 200, 403, 200, 200, 200, 200, 200, 200]),
        (&ADMIN, [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ];
    for (auth, expected) in matrix {
        for ((method, path, body), want) in routes.iter().zip(expected) {
            let r = app.send(method.clone(), path, *body, &[], auth).await;
            assert_eq!(r.status, want, "{auth:?} {method} {path}: {}", r.body);
            match want {
                401 => assert_eq!(r.code(), Some("UNAUTHORIZED")),
                403 => assert_eq!(r.code(), Some("FORBIDDEN")),
                _ => {}
            }
        }
    }
    // An org-bound token cannot touch another org, whatever its scopes.
    for auth in [&acme_app, &acme_admin] {
        for path in ["/v1/orgs/other", "/v1/orgs/other/usage"] {
            let r = app.get(path, auth).await;
            assert_eq!(r.status, 403, "{auth:?} {path}");
            assert_eq!(r.code(), Some("FORBIDDEN"));
        }
        let r = app.consume("other", "tasks", 1).await;
        assert_eq!(r.status, 200, "the unbound app token still can");
    }
    // An org's own token may not set the count its period is billed on
    // (review S1); the count of a `total` resource it may.
    let r = app.put("/v1/orgs/acme/usage/conversations", json!({ "value": 0 }), &acme_app).await;
    assert_eq!((r.status, r.code()), (403, Some("FORBIDDEN")), "{}", r.body);
    assert_eq!(app.put("/v1/orgs/acme/usage/tasks", json!({ "value": 1 }), &acme_app).await.status, 200);
    assert_eq!(app.put("/v1/orgs/acme/usage/conversations", json!({ "value": 0 }), &APP).await.status, 200);
    // Health needs no token.
    let health = app.get("/v1/health", &Auth::None).await;
    assert_eq!((health.status, health.body.clone()), (200, json!({ "status": "ok" })));
}

/// A function's own AWS configuration (`clients::lambda_config`, what every
/// `main` uses) finds its region, credentials and endpoints in the
/// environment, and each function gets only the clients it asks for.
#[tokio::test]
async fn a_functions_configuration_comes_from_the_environment_alone() {
    let config = quota_shared::deps::Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some("lambda-config-check".into()),
        "EVENT_BUS_NAME" => Some("quota-bus".into()),
        "SENDER_EMAIL" => Some("quota@example.com".into()),
        _ => Some("https://app.example.com".into()),
    })
    .expect("a valid configuration");
    let setup = quota_shared::deps::Setup { aws: quota_shared::clients::lambda_config(), config };
    let reads = setup.store();
    assert!(reads.notifier.client().is_none() && reads.events.client().is_none());
    let all = setup.store().with_email(&setup).with_events(&setup);
    all.store.client().list_tables().send().await.expect("DynamoDB at AWS_ENDPOINT_URL_DYNAMODB");
    let ses = all.notifier.client().expect("an email client");
    let identity = ses.create_email_identity().email_identity("config-check@example.com").send().await;
    assert!(
        identity.is_ok()
            || identity.as_ref().unwrap_err().as_service_error().is_some_and(|e| e.is_already_exists_exception()),
        "SES at AWS_ENDPOINT_URL_SESV2: {identity:?}"
    );
    let eventbridge = all.events.client().expect("an EventBridge client");
    eventbridge.list_event_buses().send().await.expect("EventBridge at AWS_ENDPOINT_URL_EVENTBRIDGE");
    let err = reads
        .notifier
        .send(&["a@example.com".into()], &sample_email(), std::time::Duration::ZERO)
        .await
        .expect_err("no client");
    assert_eq!(err.to_string(), "email not sent: this function has no email client");
}

fn sample_email() -> quota_shared::email::templates::Email {
    quota_shared::email::templates::trial_ended_email("acme", quota_shared::domain::locale::Locale::En, "https://x")
}
