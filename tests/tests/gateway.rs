//! What API Gateway answers by itself, as `quota-local` answers it over real
//! HTTP: the JWT authorizer's 401 for a missing or invalid token, tokens it
//! refuses (no `exp`, a non-integer `exp` or `nbf`), and the `$default`
//! route that gives unknown paths and methods the contract's 404 and 405.
//! And what the functions decide: a present `org_id` claim that names no
//! valid org opens nothing.

use quota_tests::{TestApp, json};

fn assert_gateway_401(r: &quota_tests::Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert_eq!(r.body, json!({ "message": "Unauthorized" }), "{what}: the authorizer's own body");
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer ") && challenge.contains("invalid_token"), "{what}: {challenge}");
}

#[tokio::test]
async fn the_authorizer_refuses_missing_and_invalid_tokens_with_its_own_answer() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("gw", json!({ "plan": "basic" })).await;
    let local = app.serve_local().await;
    let consume = "/v1/orgs/gw/usage/conversations/consume";
    let now = chrono::Utc::now().timestamp();
    assert_gateway_401(&local.send("POST", consume, None, None).await, "no token");
    assert_gateway_401(&local.send("POST", consume, None, Some("not.a.token")).await, "garbage");
    let cases = [
        ("no exp", json!({ "sub": "a", "scope": "quota:write" })),
        ("float exp", json!({ "sub": "a", "scope": "quota:write", "exp": (now + 3600) as f64 + 0.5 })),
        ("string exp", json!({ "sub": "a", "scope": "quota:write", "exp": (now + 3600).to_string() })),
        ("expired", json!({ "sub": "a", "scope": "quota:write", "exp": now - 1 })),
        ("float nbf", json!({ "sub": "a", "scope": "quota:write", "exp": now + 3600, "nbf": 1.5 })),
        ("future nbf", json!({ "sub": "a", "scope": "quota:write", "exp": now + 3600, "nbf": now + 600 })),
    ];
    for (what, claims) in cases {
        assert_gateway_401(&local.send("POST", consume, None, Some(&local.token(claims))).await, what);
    }
    let forged =
        quota_local::jwt::mint("another-secret", &json!({ "sub": "a", "scope": "quota:admin", "exp": now + 60 }));
    assert_gateway_401(&local.send("POST", consume, None, Some(&forged)).await, "forged");
    let ok = local.send("POST", consume, None, Some(&local.token_for("quota:write", json!({})))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn the_authorizer_refuses_a_token_without_any_of_the_routes_scopes() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("gw-scope", json!({ "plan": "basic" })).await;
    let local = app.serve_local().await;
    let reader = local.token_for("quota:read", json!({}));
    let writer = local.token_for("quota:write", json!({}));
    let admin = local.token_for("quota:admin", json!({}));
    let nothing = local.token_for("profile email", json!({}));
    let cases = [
        ("GET", "/v1/orgs/gw-scope/usage", &writer, 403),
        ("GET", "/v1/orgs/gw-scope/usage", &reader, 200),
        ("GET", "/v1/orgs/gw-scope/usage", &admin, 200),
        ("POST", "/v1/orgs/gw-scope/usage/tasks/consume", &reader, 403),
        ("POST", "/v1/orgs/gw-scope/usage/tasks/consume", &writer, 200),
        ("POST", "/v1/orgs/gw-scope/usage/tasks/consume", &admin, 200),
        ("PUT", "/v1/orgs/gw-scope", &writer, 403),
        ("GET", "/v1/admin/orgs/gw-scope/audit", &reader, 403),
        ("GET", "/v1/plans", &nothing, 403),
    ];
    for (method, path, token, want) in cases {
        let r = local.send(method, path, Some("{}"), Some(token)).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.body);
        if want == 403 {
            assert_eq!(r.body, json!({ "message": "Forbidden" }), "{method} {path}: the authorizer's own body");
            assert!(r.headers["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
        }
    }
}

#[tokio::test]
async fn unknown_routes_get_the_contracts_404_and_405_without_a_token() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let local = app.serve_local().await;
    for path in ["/v1/nope", "/", "/v1/orgs/acme/", "/v1/orgs/acme/usage/conversations/consume/"] {
        let r = local.send("GET", path, None, None).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{path}: {}", r.body);
    }
    let r = local.send("DELETE", "/v1/orgs/acme", None, None).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{}", r.body);
    assert_eq!(r.headers["allow"], "PUT, GET");
    let health = local.send("GET", "/v1/health", None, None).await;
    assert_eq!((health.status, health.body.clone()), (200, json!({ "status": "ok" })));
}

#[tokio::test]
async fn an_org_id_claim_that_names_no_valid_org_opens_nothing() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    // Orgs whose ids a careless reading of the claim would produce.
    for org in ["acme", "null", "true", "12345"] {
        app.org(org, json!({ "plan": "basic" })).await;
    }
    let local = app.serve_local().await;
    for (what, org_id) in [
        ("empty", json!("")),
        ("null", json!(null)),
        ("true", json!(true)),
        ("array", json!(["acme"])),
        ("object", json!({ "id": "acme" })),
        ("ill-formed", json!("acme corp")),
    ] {
        let token = local.token_for("quota:read quota:write", json!({ "org_id": org_id }));
        for path in ["/v1/orgs/acme/usage", "/v1/orgs/null/usage", "/v1/orgs/true/usage", "/v1/orgs/12345/usage"] {
            let r = local.send("GET", path, None, Some(&token)).await;
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (403, Some("FORBIDDEN")),
                "{what} {path}: {}",
                r.body
            );
        }
        let r = local.send("POST", "/v1/orgs/acme/usage/tasks/consume", None, Some(&token)).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
    }
    // A number is an org id, as the gateway passes it: "12345".
    let numeric = local.token_for("quota:read", json!({ "org_id": 12345 }));
    assert_eq!(local.send("GET", "/v1/orgs/12345/usage", None, Some(&numeric)).await.status, 200);
    assert_eq!(local.send("GET", "/v1/orgs/acme/usage", None, Some(&numeric)).await.status, 403);
    assert_eq!(app.resource_usage("acme", "tasks").await["used"], 0, "nothing was consumed");
}

/// Review D9: headers the gateway sets itself are the gateway's, whatever a
/// client sends (lambda_http builds the request URL from them, and panicked
/// on `Host: a b`).
#[tokio::test]
async fn a_client_cannot_set_the_headers_the_gateway_sets() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let local = app.serve_local().await;
    for (name, value) in [("x-forwarded-proto", "a b"), ("host", "a b"), ("x-forwarded-port", "x")] {
        let r = local.send_with("GET", "/v1/health", None, None, &[(name, value)]).await;
        assert_eq!((r.status, r.body.clone()), (200, json!({ "status": "ok" })), "{name}: {value}");
    }
}

/// Reservations, grants and features end to end over HTTP, as a client of
/// `quota-local` sees them: the gateway's scopes, then the functions.
#[tokio::test]
async fn reservations_grants_and_features_work_over_http() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("http", json!({ "plan": "free", "features": { "sso": true } })).await;
    let local = app.serve_local().await;
    let write = local.token_for("quota:write", json!({ "org_id": "http" }));
    let read = local.token_for("quota:read", json!({ "org_id": "http" }));
    let admin = local.token_for("quota:admin", json!({}));

    let r =
        local.send("POST", "/v1/orgs/http/usage/conversations/reserve", Some(r#"{"amount":90}"#), Some(&write)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["reservationId"].as_str().unwrap();
    let over =
        local.send("POST", "/v1/orgs/http/usage/conversations/consume", Some(r#"{"amount":11}"#), Some(&write)).await;
    assert_eq!(over.status, 429, "{}", over.body);
    let c = local
        .send("POST", &format!("/v1/orgs/http/reservations/{id}/commit"), Some(r#"{"amount":60}"#), Some(&write))
        .await;
    assert_eq!((c.status, c.body["usage"]["used"].as_i64()), (200, Some(60)), "{}", c.body);

    let grant = r#"{"resource":"conversations","amount":25,"reason":"over HTTP"}"#;
    let denied = local.send("POST", "/v1/admin/orgs/http/grants", Some(grant), Some(&write)).await;
    assert_eq!(denied.status, 403, "the gateway wants the admin scope: {}", denied.body);
    let g = local.send("POST", "/v1/admin/orgs/http/grants", Some(grant), Some(&admin)).await;
    assert_eq!((g.status, g.body["usage"]["limit"].as_i64()), (201, Some(125)), "{}", g.body);
    let rest =
        local.send("POST", "/v1/orgs/http/usage/conversations/consume", Some(r#"{"amount":65}"#), Some(&write)).await;
    assert_eq!(rest.status, 200, "{}", rest.body);

    let sso = local.send("GET", "/v1/orgs/http/features/sso", None, Some(&read)).await;
    assert_eq!(sso.body, json!({ "feature": "sso", "enabled": true, "source": "override" }));
    let cancel = local.send("DELETE", &format!("/v1/orgs/http/reservations/{id}"), None, Some(&read)).await;
    assert_eq!(cancel.status, 403, "releasing takes the write scope: {}", cancel.body);
}

/// Review defect: API Gateway's authorizer reads the scopes from `scope` or
/// `scp`, as a string or an array; the functions read only `scope`, so a
/// token that passed the gateway got 403 everywhere. And a `sub` that is
/// JSON `null` (the gateway passes `"null"`) was taken for an actor's name.
#[tokio::test]
async fn scopes_in_scp_or_as_an_array_pass_and_a_null_sub_names_nobody() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("scp", json!({ "plan": "basic" })).await;
    let local = app.serve_local().await;
    let exp = chrono::Utc::now().timestamp() + 3600;
    let tokens = [
        local.token(json!({ "sub": "okta-app", "scp": ["quota:read", "quota:write"], "exp": exp })),
        local.token(json!({ "sub": "azure-app", "scp": "quota:write", "exp": exp })),
        local.token(json!({ "sub": "array-app", "scope": ["quota:write"], "exp": exp })),
    ];
    for token in &tokens {
        let r = local.send("POST", "/v1/orgs/scp/usage/tasks/consume", Some(r#"{"amount":1}"#), Some(token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(app.resource_usage("scp", "tasks").await["used"], 3);
    for sub in [json!(null), json!(["a", "b"]), json!(true)] {
        let token = local.token(json!({ "sub": sub, "scope": "quota:write", "exp": exp }));
        let r = local.send("POST", "/v1/orgs/scp/usage/tasks/consume", Some(r#"{"amount":1}"#), Some(&token)).await;
        assert_eq!((r.status, r.code()), (401, Some("UNAUTHORIZED")), "sub {sub}: {}", r.body);
    }
}
