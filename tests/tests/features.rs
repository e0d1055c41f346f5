//! Feature entitlements: booleans from the plan, overridden per org.

use quota_tests::{ADMIN, APP, Auth, TestApp, json};

#[tokio::test]
async fn the_plan_decides_and_an_override_wins_until_removed() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("feat", json!({ "plan": "growth" })).await;

    let all = app.get("/v1/orgs/feat/features", &APP).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["plan"], "growth");
    assert_eq!(
        all.body["features"]["remove_branding"],
        json!({ "feature": "remove_branding", "enabled": true, "source": "plan" })
    );
    assert_eq!(all.body["features"]["sso"], json!({ "feature": "sso", "enabled": false, "source": "plan" }));
    assert_eq!(all.body["features"].as_object().unwrap().len(), 7);

    let put = app.org("feat", json!({ "features": { "sso": true, "webhooks": false } })).await;
    assert_eq!(put.body["features"], json!({ "sso": true, "webhooks": false }), "{}", put.body);
    let sso = app.get("/v1/orgs/feat/features/sso", &APP).await;
    assert_eq!(sso.body, json!({ "feature": "sso", "enabled": true, "source": "override" }));
    let hooks = app.get("/v1/orgs/feat/features/webhooks", &APP).await;
    assert_eq!(hooks.body, json!({ "feature": "webhooks", "enabled": false, "source": "override" }));

    // An override outlives a plan change; the plan's own values follow the plan.
    app.org("feat", json!({ "plan": "free" })).await;
    let all = app.get("/v1/orgs/feat/features", &APP).await;
    assert_eq!(all.body["features"]["sso"]["enabled"], true);
    assert_eq!(
        all.body["features"]["remove_branding"],
        json!({ "feature": "remove_branding", "enabled": false, "source": "plan" })
    );

    app.org("feat", json!({ "features": { "sso": null } })).await;
    let sso = app.get("/v1/orgs/feat/features/sso", &APP).await;
    assert_eq!(sso.body, json!({ "feature": "sso", "enabled": false, "source": "plan" }));

    // Audited like limits: before and after.
    let log = app.get("/v1/admin/orgs/feat/audit", &ADMIN).await;
    let changes: Vec<_> =
        log.body["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "features_changed").collect();
    assert_eq!(changes.len(), 2, "{}", log.body);
    // Both at the same (pinned) instant: in either order.
    let removed = changes.iter().find(|e| e["after"] == json!({ "webhooks": false })).expect("the removal");
    assert_eq!(removed["before"], json!({ "sso": true, "webhooks": false }));
    assert!(changes.iter().all(|e| e["actor"] == "admin@ops"));

    // The org usage report carries them too.
    let usage = app.usage("feat").await;
    assert_eq!(usage.body["features"]["webhooks"]["source"], "override");
    assert_eq!(app.get("/v1/orgs/feat", &APP).await.body["features"], json!({ "webhooks": false }));
}

#[tokio::test]
async fn feature_reads_cost_one_request_and_errors_have_codes() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("featc", json!({ "plan": "pro" })).await;
    app.requests.take();
    assert_eq!(app.get("/v1/orgs/featc/features", &APP).await.status, 200);
    assert_eq!(app.requests.take_counts(), [("GetItem".to_string(), 1)].into());
    assert_eq!(app.get("/v1/orgs/featc/features/priority_support", &APP).await.body["enabled"], true);
    assert_eq!(app.requests.take_counts(), [("GetItem".to_string(), 1)].into());

    let r = app.get("/v1/orgs/featc/features/fax", &APP).await;
    assert_eq!((r.status, r.code()), (404, Some("UNKNOWN_FEATURE")));
    assert!(app.requests.take().is_empty(), "an unknown feature needs no read");
    let r = app.get("/v1/orgs/ghost/features", &APP).await;
    assert_eq!((r.status, r.code()), (404, Some("ORG_NOT_FOUND")));
    let r = app.get("/v1/orgs/ghost/features/sso", &APP).await;
    assert_eq!((r.status, r.code()), (404, Some("ORG_NOT_FOUND")));
    let r = app.put("/v1/orgs/featc", json!({ "features": { "fax": true } }), &ADMIN).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("fax"));
    let r = app.put("/v1/orgs/featc", json!({ "features": { "sso": "yes" } }), &ADMIN).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")));
    let other = Auth::Token { sub: "acme-app", scope: "quota:read", org: Some("acme") };
    let r = app.get("/v1/orgs/featc/features", &other).await;
    assert_eq!((r.status, r.code()), (403, Some("FORBIDDEN")), "another org's token");
    let own = Auth::Token { sub: "featc-app", scope: "quota:read", org: Some("featc") };
    assert_eq!(app.get("/v1/orgs/featc/features/sso", &own).await.status, 200);

    let plans = app.get("/v1/plans", &APP).await;
    assert_eq!(plans.body["features"]["sso"]["names"]["da"], "Single sign-on (SAML)");
    assert_eq!(plans.body["plans"]["basic"]["features"]["api_access"], true);
}
