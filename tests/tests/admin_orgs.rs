//! `GET /v1/admin/orgs`: every org once across pages, each page most at
//! risk first, filters, and what it reads (the job's index and one `Query`
//! per org listed, never the table's history).

use std::collections::BTreeSet;

use quota_tests::{ADMIN, APP, Auth, TestApp, Value, json};

async fn page(app: &TestApp, query: &str) -> Value {
    let reply = app.get(&format!("/v1/admin/orgs{query}"), &ADMIN).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn ids(page: &Value) -> Vec<String> {
    page["orgs"].as_array().unwrap().iter().map(|o| o["orgId"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_list_pages_through_every_org_once_most_at_risk_first() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    // Five orgs: blocked, at 90 %, at 50 %, idle, and a trial ending soon.
    let blocked = app.unique("l-blocked");
    let warm = app.unique("l-warm");
    let half = app.unique("l-half");
    let idle = app.unique("l-idle");
    let ending = app.unique("l-ending");
    for org in [&blocked, &warm, &half, &idle] {
        app.org(org, json!({ "plan": "free", "locale": "da" })).await;
    }
    app.org(&ending, json!({ "plan": "free", "trialEndsAt": "2026-03-13T12:00:00Z" })).await;
    assert_eq!(app.consume(&blocked, "conversations", 100).await.status, 200);
    assert_eq!(app.consume(&warm, "conversations", 90).await.status, 200);
    assert_eq!(app.consume(&half, "conversations", 50).await.status, 200);
    // A closed period with work left also sits in the index: not an org.
    app.run_job().await;

    app.requests.take();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".to_string(),
        };
        let p = page(&app, &query).await;
        pages += 1;
        let orgs = p["orgs"].as_array().unwrap();
        assert!(orgs.len() <= 2, "{p}");
        // Each page: blocked first, then by the worst percentage.
        let order: Vec<(bool, f64)> = orgs
            .iter()
            .map(|o| (o["blocked"].as_bool().unwrap(), o["worst"]["percentage"].as_f64().unwrap_or(-1.0)))
            .collect();
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.partial_cmp(&a.1).unwrap()));
        assert_eq!(order, sorted, "{p}");
        seen.extend(ids(&p));
        match p["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let requests = app.requests.take_counts();
    assert_eq!(seen.len(), 5, "each org once: {seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 5);
    assert!(pages >= 3, "{pages} pages of 2");
    assert_eq!(requests.get("Query").copied(), Some(5), "one Query per org: {requests:?}");
    assert!(!requests.contains_key("GetItem"), "{requests:?}");

    let all = page(&app, "?limit=100").await;
    assert_eq!(ids(&all)[..3], [blocked.clone(), warm.clone(), half.clone()], "{all}");
    let first = &all["orgs"][0];
    assert_eq!(
        (first["blockedReason"].clone(), first["locale"].clone(), first["worst"]["used"].clone()),
        (json!("quota_exceeded"), json!("da"), json!(100))
    );
    assert_eq!(ids(&page(&app, "?filter=blocked").await), std::slice::from_ref(&blocked));
    assert_eq!(ids(&page(&app, "?filter=at_risk").await), [blocked.clone(), warm.clone()]);
    assert_eq!(ids(&page(&app, "?filter=trial_ending").await), std::slice::from_ref(&ending));
}

#[tokio::test]
async fn the_list_is_for_admins_and_refuses_what_it_did_not_make() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("lister", json!({ "plan": "basic" })).await;
    for query in ["?limit=0", "?limit=101", "?limit=x", "?filter=hot", "?cursor=nope", "?cursor=e30"] {
        let r = app.get(&format!("/v1/admin/orgs{query}"), &ADMIN).await;
        assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{query}: {}", r.body);
    }
    assert_eq!(app.get("/v1/admin/orgs", &APP).await.status, 403);
    let bound = Auth::Token { sub: "a", scope: "quota:admin", org: Some("lister") };
    assert_eq!(app.get("/v1/admin/orgs", &bound).await.status, 403, "an org's own token lists nothing");
}
