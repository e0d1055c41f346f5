//! Reservations: units held against the limit, then committed or released;
//! expiry; repeats; every error with its code.

use lambda_http::http::Method;
use quota_shared::domain::reservation::ReservationId;
use quota_tests::{APP, Fault, Rule, TestApp, json};

/// (stored `held`, the sum of the `holds` map) of a counter item.
async fn held_vs_holds(app: &TestApp, org: &str, resource: &str) -> (i64, i64) {
    let item = app.counter_item(org, resource).await;
    let held = item["held"].as_n().unwrap().parse().unwrap();
    let holds = item["holds"].as_m().unwrap().values();
    (held, holds.map(|h| h.as_m().unwrap()["a"].as_n().unwrap().parse::<i64>().unwrap()).sum())
}

/// A free org: conversations are hard-limited at 100.
async fn free_org(app: &TestApp, org: &str) {
    app.org(org, json!({ "plan": "free" })).await;
}

#[tokio::test]
async fn held_units_count_against_the_limit_until_committed() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "hold").await;

    let r = app.reserve("hold", "conversations", json!({ "amount": 60 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["amount"], 60);
    assert_eq!(r.body["resource"], "conversations");
    assert_eq!(r.body["expiresAt"], "2026-03-10T12:10:00Z", "ten minutes by default");
    assert_eq!(r.body["decision"]["allowed"], true);
    assert_eq!(r.body["decision"]["usage"]["held"], 60);
    assert_eq!(r.body["decision"]["usage"]["used"], 0);
    assert_eq!(r.body["decision"]["usage"]["remaining"], 40);
    let id = r.body["reservationId"].as_str().unwrap().to_string();

    // What is held is not there to consume.
    assert_eq!(app.consume("hold", "conversations", 41).await.status, 429);
    assert_eq!(app.consume("hold", "conversations", 40).await.status, 200);
    let refused = app.reserve("hold", "conversations", json!({ "amount": 1 })).await;
    assert_eq!((refused.status, refused.body["reason"].as_str()), (429, Some("quota_exceeded")));
    let check = app.get("/v1/orgs/hold/usage/conversations/check", &APP).await;
    assert_eq!(check.body["allowed"], false, "a check sees the held units: {}", check.body);

    let usage = app.resource_usage("hold", "conversations").await;
    assert_eq!(
        (usage["used"].as_i64(), usage["held"].as_i64(), usage["remaining"].as_i64()),
        (Some(40), Some(60), Some(0))
    );

    // The actual use is recorded, the rest freed.
    let c = app.commit("hold", &id, Some(30)).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        (c.body["status"].as_str(), c.body["used"].as_i64(), c.body["amount"].as_i64()),
        (Some("committed"), Some(30), Some(60))
    );
    assert_eq!((c.body["usage"]["used"].as_i64(), c.body["usage"]["held"].as_i64()), (Some(70), Some(0)));
    assert_eq!(app.consume("hold", "conversations", 30).await.status, 200);
    assert_eq!(app.consume("hold", "conversations", 1).await.status, 429);
}

#[tokio::test]
async fn a_commit_defaults_to_all_and_one_above_consumes_the_difference_under_the_rules() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "above").await;
    let all = app.reserved("above", "conversations", 5).await;
    let c = app.commit("above", &all, None).await;
    assert_eq!((c.status, c.body["used"].as_i64()), (200, Some(5)));

    let id = app.reserved("above", "conversations", 10).await;
    assert_eq!(app.consume("above", "conversations", 80).await.status, 200);
    // 85 used, 10 held: 5 left beyond the hold.
    let over = app.commit("above", &id, Some(21)).await;
    assert_eq!((over.status, over.body["reason"].as_str()), (429, Some("quota_exceeded")), "{}", over.body);
    assert_eq!(app.resource_usage("above", "conversations").await["held"], 10, "still open after a refusal");
    let ok = app.commit("above", &id, Some(15)).await;
    assert_eq!((ok.status, ok.body["used"].as_i64()), (200, Some(15)), "{}", ok.body);
    let usage = app.resource_usage("above", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(100), Some(0)));

    // Soft limits take the excess as overage.
    app.org("above-basic", json!({ "plan": "basic" })).await;
    let id = app.reserved("above-basic", "conversations", 90).await;
    let c = app.commit("above-basic", &id, Some(130)).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!((c.body["usage"]["used"].as_i64(), c.body["usage"]["overage"].as_i64()), (Some(130), Some(30)));
}

#[tokio::test]
async fn commit_and_release_end_a_reservation_once_and_repeats_answer_the_first_outcome() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "once").await;

    let released = app.reserved("once", "conversations", 20).await;
    let r = app.cancel("once", &released).await;
    assert_eq!((r.status, r.body["status"].as_str(), r.body["used"].as_i64()), (200, Some("released"), Some(0)));
    let again = app.cancel("once", &released).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body, "a repeat answers the first outcome");
    let late = app.commit("once", &released, None).await;
    assert_eq!((late.status, late.code()), (409, Some("RESERVATION_RELEASED")));

    let committed = app.reserved("once", "conversations", 20).await;
    let c = app.commit("once", &committed, Some(7)).await;
    assert_eq!(c.status, 200);
    let repeat = app.commit("once", &committed, Some(19)).await;
    assert_eq!((repeat.status, repeat.body["used"].as_i64()), (200, Some(7)), "the first outcome, not a second commit");
    let cancel = app.cancel("once", &committed).await;
    assert_eq!((cancel.status, cancel.code()), (409, Some("RESERVATION_COMMITTED")));

    let usage = app.resource_usage("once", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(7), Some(0)), "counted once");
}

#[tokio::test]
async fn an_expired_reservation_frees_itself_at_its_expiry_and_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "exp").await;
    let r = app.reserve("exp", "conversations", json!({ "amount": 70, "ttlSeconds": 60 })).await;
    assert_eq!(r.body["expiresAt"], "2026-03-10T12:01:00Z");
    let id = r.body["reservationId"].as_str().unwrap().to_string();

    app.set_now("2026-03-10T12:00:59Z");
    assert_eq!(app.resource_usage("exp", "conversations").await["held"], 70);
    app.set_now("2026-03-10T12:01:00Z");
    // Read at its expiry: free, though nothing has written since.
    assert_eq!(app.resource_usage("exp", "conversations").await["held"], 0);
    assert_eq!(app.stored_counter("exp", "conversations").await.holds.len(), 1, "still on the item");

    // The next write takes it off, and may use what it held.
    assert_eq!(app.consume("exp", "conversations", 100).await.status, 200);
    let stored = app.stored_counter("exp", "conversations").await;
    assert_eq!((stored.holds.len(), stored.held(), stored.used), (0, 0, 100));

    let commit = app.commit("exp", &id, None).await;
    assert_eq!((commit.status, commit.code()), (409, Some("RESERVATION_EXPIRED")));
    let cancel = app.cancel("exp", &id).await;
    assert_eq!((cancel.status, cancel.body["status"].as_str()), (200, Some("expired")), "its units are free");
    assert_eq!(app.resource_usage("exp", "conversations").await["used"], 100);
}

#[tokio::test]
async fn the_daily_job_frees_expired_holds_of_an_idle_org() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "idle").await;
    app.reserve("idle", "contacts", json!({ "amount": 30, "ttlSeconds": 60 })).await;
    app.set_now("2026-03-11T00:15:00Z");
    app.run_job().await;
    let stored = app.stored_counter("idle", "contacts").await;
    assert_eq!((stored.holds.len(), stored.held()), (0, 0));
    assert_eq!(app.consume("idle", "contacts", 250).await.status, 200, "all 250 free again");
}

#[tokio::test]
async fn a_commit_just_before_expiry_counts_and_one_at_expiry_does_not() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "edge").await;
    let first = app.reserve("edge", "conversations", json!({ "amount": 10, "ttlSeconds": 30 })).await;
    let second = app.reserve("edge", "conversations", json!({ "amount": 10, "ttlSeconds": 30 })).await;
    app.set_now("2026-03-10T12:00:29Z");
    let c = app.commit("edge", first.body["reservationId"].as_str().unwrap(), None).await;
    assert_eq!(c.status, 200);
    app.set_now("2026-03-10T12:00:30Z");
    let late = app.commit("edge", second.body["reservationId"].as_str().unwrap(), None).await;
    assert_eq!((late.status, late.code()), (409, Some("RESERVATION_EXPIRED")));
    let usage = app.resource_usage("edge", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(10), Some(0)));
}

#[tokio::test]
async fn a_reservation_ends_with_its_period() {
    let app = TestApp::new("2026-03-31T23:55:00Z").await;
    free_org(&app, "period").await;
    let r = app.reserve("period", "conversations", json!({ "amount": 40, "ttlSeconds": 3600 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["expiresAt"], "2026-04-01T00:00:00Z", "cut at the period's end");
    let id = r.body["reservationId"].as_str().unwrap().to_string();

    app.set_now("2026-04-01T00:00:05Z");
    assert_eq!(app.consume("period", "conversations", 1).await.status, 200, "April starts empty");
    let usage = app.resource_usage("period", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(1), Some(0)));
    let commit = app.commit("period", &id, None).await;
    assert_eq!((commit.status, commit.code()), (409, Some("RESERVATION_EXPIRED")));
    // Total resources have no period: the TTL alone bounds them.
    let t = app.reserve("period", "contacts", json!({ "amount": 1, "ttlSeconds": 3600 })).await;
    assert_eq!(t.body["expiresAt"], "2026-04-01T01:00:05Z");
}

#[tokio::test]
async fn reserve_refuses_as_consume_does() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("trial", json!({ "plan": "free", "trialEndsAt": "2026-03-10T11:00:00Z" })).await;
    let r = app.reserve("trial", "conversations", json!({ "amount": 1 })).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (402, Some("trial_expired")), "{}", r.body);
    let missing = app.reserve("ghost", "conversations", json!({ "amount": 1 })).await;
    assert_eq!((missing.status, missing.code()), (404, Some("ORG_NOT_FOUND")));
}

#[tokio::test]
async fn a_keyed_reserve_holds_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "key").await;
    let body = json!({ "amount": 25, "ttlSeconds": 120 }).to_string();
    let send = |key: &'static str, body: String| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/v1/orgs/key/usage/conversations/reserve",
                Some(&body),
                &[("idempotency-key", key)],
                &APP,
            )
            .await
        }
    };
    let first = send("job-1", body.clone()).await;
    let second = send("job-1", body.clone()).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body["reservationId"], second.body["reservationId"]);
    assert_eq!(first.body["expiresAt"], second.body["expiresAt"]);
    assert_eq!(second.headers.get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(app.resource_usage("key", "conversations").await["held"], 25, "held once");

    let other = send("job-1", json!({ "amount": 26, "ttlSeconds": 120 }).to_string()).await;
    assert_eq!((other.status, other.code()), (422, Some("IDEMPOTENCY_KEY_REUSED")));
    assert_eq!(app.consume_with_key("key", "conversations", 1, "used-for-consume").await.status, 200);
    let reuse = send("used-for-consume", body).await;
    assert_eq!((reuse.status, reuse.code()), (422, Some("IDEMPOTENCY_KEY_REUSED")));
}

#[tokio::test]
async fn every_bad_request_has_its_code() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "bad").await;
    for (body, why) in [
        (json!({}), "amount is required"),
        (json!({ "amount": 0 }), "amount from 1"),
        (json!({ "amount": 1.5 }), "whole amounts"),
        (json!({ "amount": 1, "ttlSeconds": 0 }), "ttl from 1"),
        (json!({ "amount": 1, "ttlSeconds": 86_401 }), "ttl up to a day"),
        (json!({ "amount": 1, "ttlSeconds": null }), "no null"),
        (json!({ "amount": 1, "ttl": 5 }), "unknown field"),
    ] {
        let r = app.reserve("bad", "conversations", body).await;
        assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{why}: {}", r.body);
    }
    let r = app.reserve("bad", "widgets", json!({ "amount": 1 })).await;
    assert_eq!((r.status, r.code()), (404, Some("UNKNOWN_RESOURCE")));

    let id = app.reserved("bad", "conversations", 3).await;
    let r = app.commit("bad", &id, Some(-1)).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")));
    let r = app.send(Method::DELETE, &format!("/v1/orgs/bad/reservations/{id}"), Some("{}"), &[], &APP).await;
    assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")));

    // Ids that were never issued, or belong to another org, name nothing.
    free_org(&app, "other").await;
    let issued = ReservationId::decode(&id).expect("an issued id decodes");
    let forged = ReservationId { nonce: "ab".repeat(16), ..issued.clone() }.encode();
    let resized = ReservationId { amount: 1, ..issued }.encode();
    for (org, id) in [
        ("bad", "nope"),
        ("bad", "rsv_!!"),
        ("bad", forged.as_str()),
        ("bad", resized.as_str()),
        ("other", id.as_str()),
    ] {
        let r = app.commit(org, id, None).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "{org}/{id}");
        let r = app.cancel(org, id).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "{org}/{id}");
    }
    assert_eq!(app.resource_usage("bad", "conversations").await["held"], 3, "untouched");
}

#[tokio::test]
async fn a_counter_keeps_a_bounded_number_of_open_reservations() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("many", json!({ "plan": "pro" })).await; // leads: unlimited
    let open = quota_shared::domain::reservation::MAX_OPEN;
    for _ in 0..open {
        app.reserved("many", "leads", 1).await;
    }
    let r = app.reserve("many", "leads", json!({ "amount": 1 })).await;
    assert_eq!((r.status, r.code()), (409, Some("TOO_MANY_RESERVATIONS")), "{}", r.body);
    // Once some expire, there is room again.
    app.advance(chrono::Duration::seconds(600));
    assert_eq!(app.reserve("many", "leads", json!({ "amount": 1 })).await.status, 201);
    assert_eq!(app.stored_counter("many", "leads").await.holds.len(), 1);
}

#[tokio::test]
async fn reserve_commit_and_release_cost_one_request_each() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "cost").await;
    app.consume("cost", "conversations", 1).await;
    app.requests.take();
    let id = app.reserved("cost", "conversations", 5).await;
    assert_eq!(app.requests.take_counts(), [("UpdateItem".to_string(), 1)].into(), "reserve");
    app.cancel("cost", &id).await;
    assert_eq!(app.requests.take_counts(), [("TransactWriteItems".to_string(), 1)].into(), "release");
    let id = app.reserved("cost", "conversations", 5).await;
    app.requests.take();
    app.commit("cost", &id, Some(0)).await;
    assert_eq!(app.requests.take_counts(), [("TransactWriteItems".to_string(), 1)].into(), "commit of nothing");
    let id = app.reserved("cost", "conversations", 5).await;
    app.requests.take();
    app.commit("cost", &id, None).await;
    // Units recorded may cross a threshold: the counter is read once for it.
    assert_eq!(
        app.requests.take_counts(),
        [("GetItem".to_string(), 1), ("TransactWriteItems".to_string(), 1)].into(),
        "commit of units"
    );
}

/// Review defect: the SDK sent a reserve's UpdateItem again after its answer
/// was lost; the hold was written once but `held` and `rem` moved twice, for
/// good, and the period's rollover (pinned to `held`) could never apply.
#[tokio::test]
async fn a_reserve_whose_answer_is_lost_holds_its_units_once() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    free_org(&app, "lost").await;
    app.consume("lost", "conversations", 1).await;
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::LoseResponse).times(1));
    let r = app.reserve("lost", "conversations", json!({ "amount": 30 })).await;
    app.faults().dynamodb.clear();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(held_vs_holds(&app, "lost", "conversations").await, (30, 30));
    assert_eq!(app.cancel("lost", r.body["reservationId"].as_str().unwrap()).await.status, 200);
    assert_eq!(app.consume("lost", "conversations", 99).await.status, 200, "all 99 there");
    app.set_now("2026-04-01T00:05:00Z");
    assert_eq!(app.consume("lost", "conversations", 1).await.status, 200, "the period rolls over");
}

/// Review defect: an anchor change moved the period's end before a live
/// hold's expiry, and the rollover dropped the hold: its commit answered 404.
#[tokio::test]
async fn a_live_reservation_outlives_a_period_shortened_by_an_anchor_change() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "anchor").await;
    let r = app.reserve("anchor", "conversations", json!({ "amount": 40, "ttlSeconds": 86_400 })).await;
    assert_eq!(r.body["expiresAt"], "2026-03-11T12:00:00Z");
    let id = r.body["reservationId"].as_str().unwrap().to_string();
    app.org("anchor", json!({ "anchorDay": 11 })).await; // the period now ends 11 March 00:00
    app.set_now("2026-03-11T06:00:00Z");
    assert_eq!(app.consume("anchor", "conversations", 1).await.status, 200, "rolls over");
    let usage = app.resource_usage("anchor", "conversations").await;
    assert_eq!((usage["used"].as_i64(), usage["held"].as_i64()), (Some(1), Some(40)), "the hold came along");
    let c = app.commit("anchor", &id, Some(30)).await;
    assert_eq!((c.status, c.body["usage"]["used"].as_i64()), (200, Some(31)), "{}", c.body);
    assert_eq!(held_vs_holds(&app, "anchor", "conversations").await, (0, 0));
}

/// Review defect: a commit the count's cap refuses (`used` + actual past
/// 2^53 - 1) looped on its failed condition and answered 503 forever.
#[tokio::test]
async fn a_commit_past_the_largest_count_is_refused_not_a_503() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.org("cap", json!({ "plan": "pro" })).await; // leads: unlimited
    let max = quota_shared::domain::MAX_COUNT;
    let id = app.reserved("cap", "leads", max).await;
    assert_eq!(app.consume("cap", "leads", 1).await.status, 200);
    let c = app.commit("cap", &id, None).await;
    assert_eq!((c.status, c.body["reason"].as_str()), (429, Some("quota_exceeded")), "{}", c.body);
    assert_eq!(c.body["usage"]["held"], max, "still open, and shown");
    assert_eq!(app.commit("cap", &id, Some(5)).await.status, 200);
}

/// Second review: a carried-over hold committed after its (shortened)
/// period ended, before anything closed it, either looped to 503 (above the
/// hold) or landed its units in the ended period.
#[tokio::test]
async fn a_carried_hold_commits_into_the_new_period_even_before_the_rollover() {
    for (actual, used) in [(50, 50), (30, 30)] {
        let app = TestApp::new("2026-03-10T12:00:00Z").await;
        free_org(&app, "carry").await;
        assert_eq!(app.consume("carry", "conversations", 60).await.status, 200);
        let r = app.reserve("carry", "conversations", json!({ "amount": 40, "ttlSeconds": 86_400 })).await;
        let id = r.body["reservationId"].as_str().unwrap().to_string();
        app.org("carry", json!({ "anchorDay": 11 })).await;
        app.set_now("2026-03-11T06:00:00Z");
        let c = app.commit("carry", &id, Some(actual)).await;
        assert_eq!((c.status, c.body["usage"]["used"].as_i64()), (200, Some(used)), "{actual}: {}", c.body);
        app.set_now("2026-03-12T00:15:00Z");
        app.run_job().await;
        let closed: Vec<_> = app.events("carry").into_iter().filter(|(k, _)| k == "UsagePeriodClosed").collect();
        let conv = &closed[0].1["resources"][0];
        assert_eq!((conv["resource"].as_str(), conv["used"].as_i64()), (Some("conversations"), Some(60)), "{closed:?}");
    }
}

/// The rollover pinned the holds by their stored sum alone: a release and a
/// reserve of the same amount between its read and its write kept the sum,
/// and it wrote back the hold it had read (released, so never freed again
/// before its expiry). It pins the holds' version now.
#[tokio::test]
async fn a_rollover_writes_the_holds_as_they_are_not_as_it_read_them() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "aba").await;
    let a = app.reserve("aba", "conversations", json!({ "amount": 40, "ttlSeconds": 86_400 })).await;
    let a = a.body["reservationId"].as_str().unwrap().to_string();
    app.org("aba", json!({ "anchorDay": 11 })).await; // A now outlives its period
    let stale = app.stored_counter("aba", "conversations").await;
    assert_eq!(stale.holds.len(), 1);
    assert_eq!(app.cancel("aba", &a).await.status, 200);
    let b = app.reserve("aba", "conversations", json!({ "amount": 40, "ttlSeconds": 86_400 })).await;
    assert_eq!(b.body["expiresAt"], "2026-03-11T00:00:00Z", "B ends with the shortened period");

    app.set_now("2026-03-11T06:00:00Z");
    let org = quota_shared::domain::org::OrgId::parse("aba").unwrap();
    app.direct.store.roll_over(&org, &stale, app.now()).await.unwrap();
    assert_eq!(held_vs_holds(&app, "aba", "conversations").await, (0, 0), "neither A (released) nor B (expired)");
    assert_eq!(app.consume("aba", "conversations", 100).await.status, 200);
    let late = app.commit("aba", &a, None).await;
    assert_eq!((late.status, late.code()), (409, Some("RESERVATION_RELEASED")));
}

/// A counter written before reservations and grants (no `holds`, `grants`,
/// `held` or versions) takes both: the first reserve or grant gives it the
/// maps, and it rolls over as any other.
#[tokio::test]
async fn a_counter_from_before_reservations_and_grants_takes_both() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "legacy").await;
    assert_eq!(app.consume("legacy", "conversations", 10).await.status, 200);
    app.direct
        .store
        .client()
        .update_item()
        .table_name(app.direct.store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("ORG#legacy".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("STATE#USAGE#conversations".into()))
        .update_expression("REMOVE holds, grants, held, gv, hv")
        .send()
        .await
        .unwrap();
    let id = app.reserved("legacy", "conversations", 20).await;
    let g = app.grant("legacy", json!({ "resource": "conversations", "amount": 5, "reason": "r" })).await;
    assert_eq!((g.status, g.body["usage"]["limit"].as_i64()), (201, Some(105)), "{}", g.body);
    assert_eq!(app.commit("legacy", &id, Some(15)).await.status, 200);
    assert_eq!(app.consume("legacy", "conversations", 81).await.status, 429);
    assert_eq!(app.consume("legacy", "conversations", 80).await.status, 200);
    app.set_now("2026-04-01T00:05:00Z");
    assert_eq!(app.consume("legacy", "conversations", 100).await.status, 200, "April, on the plan's 100");
    assert_eq!(held_vs_holds(&app, "legacy", "conversations").await, (0, 0));
}

/// Review defect: an id whose expiry had passed answered `200 expired` (or
/// `409 RESERVATION_EXPIRED` to a commit) whether or not it was ever issued
/// to this org. Once its hold is gone, only an id issued to the org, as
/// issued, is "expired"; any other is not found.
#[tokio::test]
async fn an_expired_id_is_expired_only_for_the_org_it_was_issued_to() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "mine").await;
    free_org(&app, "theirs").await;
    let r = app.reserve("mine", "conversations", json!({ "amount": 5, "ttlSeconds": 60 })).await;
    let id = r.body["reservationId"].as_str().expect("reserved").to_string();
    app.advance(chrono::Duration::seconds(61));
    // A consume sweeps the expired hold off the counter.
    assert_eq!(app.consume("mine", "conversations", 1).await.status, 200);
    assert_eq!(app.stored_counter("mine", "conversations").await.holds.len(), 0);

    let issued = ReservationId::decode(&id).expect("an issued id decodes");
    let made_up = ReservationId { nonce: "ab".repeat(16), ..issued.clone() }.encode();
    let altered = ReservationId { amount: 4, ..issued.clone() }.encode();
    for (org, other) in [("mine", made_up.as_str()), ("mine", altered.as_str()), ("theirs", id.as_str())] {
        let r = app.cancel(org, other).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "release {org}/{other}: {}", r.body);
        let r = app.commit(org, other, None).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "commit {org}/{other}: {}", r.body);
    }
    let r = app.cancel("mine", &id).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("expired")), "{}", r.body);
    let r = app.commit("mine", &id, None).await;
    assert_eq!((r.status, r.code()), (409, Some("RESERVATION_EXPIRED")), "{}", r.body);
}

/// Review defect: the outcome record was found by the nonce alone, so an
/// ended reservation's id with its amount or expiry altered answered the
/// first outcome (or a conflict) instead of "not found".
#[tokio::test]
async fn an_ended_reservations_id_altered_is_not_found() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    free_org(&app, "altered").await;
    let id = app.reserved("altered", "conversations", 5).await;
    assert_eq!(app.commit("altered", &id, None).await.status, 200);
    let issued = ReservationId::decode(&id).unwrap();
    let later = issued.expires_at + chrono::Duration::seconds(1);
    for other in [ReservationId { amount: 4, ..issued.clone() }, ReservationId { expires_at: later, ..issued.clone() }]
    {
        let other = other.encode();
        let r = app.commit("altered", &other, None).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "commit: {}", r.body);
        let r = app.cancel("altered", &other).await;
        assert_eq!((r.status, r.code()), (404, Some("RESERVATION_NOT_FOUND")), "release: {}", r.body);
    }
    assert_eq!(app.commit("altered", &id, None).await.status, 200, "the id itself still answers its outcome");
}
