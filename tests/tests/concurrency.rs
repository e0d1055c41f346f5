//! Many simultaneous writes against one hard limit (consumes, reservations
//! committed, released and expiring, grants added and expiring): exactly
//! the limit is admitted, each unit counted once, whatever the interleaving.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use quota_tests::{ADMIN, Fault, Rule, TestApp, json};

const LIMIT: i64 = 100;
const CALLERS: usize = 250;

/// One burst at a time: each test here sends hundreds of requests at once,
/// and DynamoDB Local on two cores answering several such bursts together
/// is slower than the service's time bounds allow (it would answer 503).
static ONE_BURST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn statuses(app: &Arc<TestApp>, org: &'static str, keyed: bool) -> (usize, usize, Vec<u16>) {
    let tasks = (0..CALLERS).map(|i| {
        let app = Arc::clone(app);
        tokio::spawn(async move {
            if keyed {
                // As a client does: a 503 is retried with the same key after
                // its Retry-After (a burst of transactions on one counter
                // can exhaust the store budget, on DynamoDB too). The retry
                // must then count once, whether or not the first attempt
                // was applied.
                let key = format!("req-{i}");
                until_answered(|| app.consume_with_key(org, "conversations", 1, &key)).await.status
            } else {
                app.consume(org, "conversations", 1).await.status
            }
        })
    });
    let all: Vec<u16> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let admitted = all.iter().filter(|s| **s == 200).count();
    let refused = all.iter().filter(|s| **s == 429).count();
    (admitted, refused, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn exactly_the_limit_is_admitted() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("race", json!({ "plan": "free" })).await;
    let (admitted, refused, all) = statuses(&app, "race", false).await;
    // Without a key, a consume whose answer came too late (a busy machine
    // answers slowly) says its outcome is unknown: it may have counted.
    let unknown = all.iter().filter(|s| **s == 503).count();
    assert_eq!(admitted + refused + unknown, CALLERS, "200, 429 or 503 OUTCOME_UNKNOWN: {all:?}");
    let used = app.resource_usage("race", "conversations").await["used"].as_i64().unwrap();
    assert!(refused > 0, "250 callers, 100 units: {all:?}");
    assert_eq!(used, LIMIT, "a refusal means the limit was reached, exactly");
    assert!(admitted as i64 <= used && used <= (admitted + unknown) as i64, "{admitted} + {unknown} unknown, {used}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn exactly_the_limit_is_admitted_with_idempotency_keys() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("race-keys", json!({ "plan": "free" })).await;
    let (admitted, refused, all) = statuses(&app, "race-keys", true).await;
    assert_eq!(admitted, LIMIT as usize, "statuses: {all:?}");
    assert_eq!(refused, CALLERS - LIMIT as usize, "statuses: {all:?}");
    assert_eq!(app.resource_usage("race-keys", "conversations").await["used"], LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_key_sent_many_times_at_once_counts_once() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("same-key", json!({ "plan": "basic" })).await;
    let tasks = (0..40).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.consume_with_key("same-key", "conversations", 5, "once").await })
    });
    let replies: Vec<_> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let used = app.resource_usage("same-key", "conversations").await["used"].clone();
    let fresh = replies.iter().filter(|r| r.headers.get("idempotent-replayed").is_none()).count();
    assert_eq!((fresh, used), (1, serde_json::json!(5)), "one call recorded, the rest replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_rollover_closes_the_old_period_once() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-31T23:59:00Z").await);
    app.org("race-roll", json!({ "plan": "basic" })).await;
    app.consume("race-roll", "conversations", 130).await;
    app.set_now("2026-04-01T00:00:00Z");
    // Keyed and retried on 503, as a client does on a loaded machine: each
    // unit still counts once.
    let tasks = (0..50).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let key = format!("roll-{i}");
            until_answered(|| app.consume_with_key("race-roll", "conversations", 1, &key)).await.status
        })
    });
    let all: Vec<u16> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    assert!(all.iter().all(|s| *s == 200), "{all:?}");
    assert_eq!(app.resource_usage("race-roll", "conversations").await["used"], 50);
    let closed = closed_periods(&app, "race-roll").await;
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0], (130, 30));
}

/// `(used, overage)` of every closed-period record of an org.
async fn closed_periods(app: &TestApp, org: &str) -> Vec<(i64, i64)> {
    let out = app
        .deps
        .store
        .client()
        .query()
        .table_name(app.deps.store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("ORG#{org}")))
        .expression_attribute_values(":c", AttributeValue::S("CLOSED#".into()))
        .send()
        .await
        .expect("query");
    let n = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| -> i64 {
        item[k].as_n().unwrap().parse().unwrap()
    };
    out.items().iter().map(|i| (n(i, "used"), n(i, "overage"))).collect()
}

/// Sends a request until it is answered with anything but 503 (which says
/// to retry: with the same key or reservation id a retry is exact), as a
/// client does: after a wait that grows, never shorter than `Retry-After`,
/// jittered, so that a burst's retries spread out (a loaded store that
/// timed out a burst all at once would time out the same burst again), for
/// up to three minutes. The assertions stay exact: every request ends
/// answered, and each unit counts once.
async fn until_answered<F: std::future::Future<Output = quota_tests::Reply>>(
    send: impl Fn() -> F,
) -> quota_tests::Reply {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut wait = Duration::from_secs(1);
    loop {
        let r = send().await;
        if r.status != 503 {
            return r;
        }
        assert!(Instant::now() < deadline, "503 for three minutes: {}", r.body);
        let after: u64 = r.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).expect("Retry-After");
        let wait_now = wait.max(Duration::from_secs(after));
        let jitter = quota_shared::domain::random_u64() % wait_now.as_millis() as u64;
        tokio::time::sleep(wait_now + Duration::from_millis(jitter)).await;
        wait = (wait * 2).min(Duration::from_secs(8));
    }
}

/// `rem` as stored, beside what it must equal: `lim - used - held`.
async fn stored_rem(app: &TestApp, org: &str, resource: &str) -> (i64, i64) {
    let item = app.counter_item(org, resource).await;
    let num = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).map_or(0, |v| v.parse::<i64>().unwrap());
    (num("rem"), num("lim") - num("used") - num("held"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn mixed_reservations_and_consumes_never_pass_a_hard_limit_and_count_each_unit_once() {
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("mixed", json!({ "plan": "free" })).await;
    // 30 units held by reservations that have expired when the burst starts:
    // they must come back exactly once, to whoever needs them.
    for _ in 0..3 {
        app.reserve("mixed", "conversations", json!({ "amount": 10, "ttlSeconds": 30 })).await;
    }
    app.advance(chrono::Duration::seconds(30));

    // Read the counter as stored, over and over, while the burst runs: used
    // + held never passes the limit at any moment, not only at the end.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || samples == 0 {
                let item = app.counter_item("mixed", "conversations").await;
                let num =
                    |name: &str| item.get(name).and_then(|v| v.as_n().ok()).map_or(0, |v| v.parse::<i64>().unwrap());
                let (used, held, lim, rem) = (num("used"), num("held"), num("lim"), num("rem"));
                assert!(used + held <= lim, "used {used} + held {held} passed the limit {lim}");
                assert_eq!(rem, lim - used - held, "rem kept exact at every moment");
                samples += 1;
            }
            samples
        })
    };

    // As a client does on a busy machine: every write keyed (a reservation
    // is its own key for its end) and a 503 retried with it, so each
    // answer is the write's one outcome.
    let consumers = (0..60).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let key = format!("mixed-{i}");
            let r = until_answered(|| app.consume_with_key("mixed", "conversations", 1, &key)).await;
            (r.status == 200) as i64
        })
    });
    let reservers = (0..30).map(|i: i64| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let key = format!("mixed-reserve-{i}");
            let body = json!({ "amount": 4 }).to_string();
            let path = "/v1/orgs/mixed/usage/conversations/reserve";
            let headers = [("idempotency-key", key.as_str())];
            let (body, headers) = (&body, &headers);
            let r = until_answered(|| {
                app.send(lambda_http::http::Method::POST, path, Some(body), headers, &quota_tests::APP)
            })
            .await;
            if r.status != 201 {
                assert_eq!(r.status, 429, "{}", r.body);
                return 0;
            }
            let id = r.body["reservationId"].as_str().unwrap().to_string();
            match i % 4 {
                // Less, more (one above the hold: under the limit's rules), all.
                0 | 1 => {
                    let actual = if i % 4 == 0 { i % 4 + 2 } else { 5 };
                    let c = until_answered(|| app.commit("mixed", &id, Some(actual))).await;
                    match c.status {
                        200 => c.body["used"].as_i64().unwrap(),
                        429 => {
                            assert_eq!(until_answered(|| app.cancel("mixed", &id)).await.status, 200);
                            0
                        }
                        other => panic!("commit: {other} {}", c.body),
                    }
                }
                2 => {
                    assert_eq!(until_answered(|| app.cancel("mixed", &id)).await.status, 200);
                    0
                }
                // Commit and release race for the same reservation: one wins.
                _ => {
                    let (c, d) = tokio::join!(app.commit("mixed", &id, None), app.cancel("mixed", &id));
                    match (c.status, d.status) {
                        (200, 409) => {
                            assert_eq!(d.code(), Some("RESERVATION_COMMITTED"));
                            c.body["used"].as_i64().unwrap()
                        }
                        (409, 200) => {
                            assert_eq!(c.code(), Some("RESERVATION_RELEASED"));
                            0
                        }
                        other => panic!("both or neither ended it: {other:?} {} {}", c.body, d.body),
                    }
                }
            }
        })
    });
    let consumed: i64 = join_all(consumers).await.into_iter().map(|r| r.expect("task")).sum();
    let committed: i64 = join_all(reservers).await.into_iter().map(|r| r.expect("task")).sum();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.await.expect("every sample within the limit");
    assert!(samples > 1, "sampled during the burst ({samples})");

    let usage = app.resource_usage("mixed", "conversations").await;
    assert_eq!(usage["used"], consumed + committed, "every admitted unit once: {usage}");
    assert!(consumed + committed <= LIMIT, "{consumed} + {committed}");
    assert_eq!(usage["held"], 0);
    let stored = app.stored_counter("mixed", "conversations").await;
    assert_eq!((stored.held(), stored.holds.len()), (0, 0), "every hold ended, the expired ones once");
    let (rem, expected) = stored_rem(&app, "mixed", "conversations").await;
    assert_eq!(rem, expected, "rem kept exact by every write");
    // What is left is all there to use.
    let rest = LIMIT - consumed - committed;
    if rest > 0 {
        assert_eq!(app.consume("mixed", "conversations", rest).await.status, 200);
    }
    assert_eq!(app.consume("mixed", "conversations", 1).await.status, 429);
}

/// 64 clients consume at full speed, each unit under its own key and each
/// 503 retried with it, as the TypeScript client does; on DynamoDB every
/// keyed consume in flight makes an admin's transaction on the counter
/// conflict, so a third of all transactions are cancelled by a conflict
/// here too. A grant added while they are in flight gets through within its
/// budget, and admits exactly its units more.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_grant_added_mid_burst_admits_exactly_its_units_more() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::with_faults("2026-03-10T12:00:00Z").await);
    app.org("midgrant", json!({ "plan": "free" })).await;
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::TransactionCanceledByConflict).rate(0.33));
    let admitted = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicBool::new(false));
    let clients = (0..64).map(|c| {
        let (app, admitted, in_flight, granted) =
            (Arc::clone(&app), Arc::clone(&admitted), Arc::clone(&in_flight), Arc::clone(&granted));
        tokio::spawn(async move {
            let mut refused_after_grant = 0;
            let mut statuses = Vec::new();
            for n in 0.. {
                let key = format!("c{c}-{n}");
                // A 503 is retried with the same key after its Retry-After
                // (not sooner: the first attempt may still be under way).
                let status = until_answered(|| async {
                    in_flight.fetch_add(1, SeqCst);
                    let r = app.consume_with_key("midgrant", "conversations", 1, &key).await;
                    in_flight.fetch_sub(1, SeqCst);
                    r
                })
                .await
                .status;
                statuses.push(status);
                match status {
                    200 => {
                        admitted.fetch_add(1, SeqCst);
                    }
                    429 if granted.load(SeqCst) => refused_after_grant += 1,
                    429 => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    other => panic!("consume: {other}"),
                }
                // The grant's units are gone for this client.
                if refused_after_grant == 3 || n > 400 {
                    break;
                }
            }
            statuses
        })
    });
    let clients: Vec<_> = clients.collect();
    while admitted.load(SeqCst) < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let (before, busy_before) = (admitted.load(SeqCst), in_flight.load(SeqCst));
    // Keyed and retried on 503 (its transaction may time out on a loaded
    // machine), as an admin's client does: added once either way.
    let grant = until_answered(|| {
        let body = json!({ "resource": "conversations", "amount": 50, "reason": "mid-burst" }).to_string();
        let app = Arc::clone(&app);
        async move {
            let path = "/v1/admin/orgs/midgrant/grants";
            app.send(lambda_http::http::Method::POST, path, Some(&body), &[("idempotency-key", "mid-burst")], &ADMIN)
                .await
        }
    })
    .await;
    let busy_after = in_flight.load(SeqCst);
    granted.store(true, SeqCst);
    assert_eq!(grant.status, 201, "{}", grant.body);
    let all: Vec<u16> = join_all(clients).await.into_iter().flat_map(|r| r.expect("client")).collect();
    app.faults().dynamodb.clear();
    assert!(before < 100, "the grant was asked for while units were still being admitted ({before})");
    assert!(busy_before > 0 && busy_after > 0, "consumes in flight when the grant was asked and answered");
    assert!(app.faults().dynamodb.injected()["TransactionCanceledByConflict"] > 0);
    let used = app.resource_usage("midgrant", "conversations").await["used"].clone();
    assert_eq!(all.iter().filter(|s| **s == 200).count(), 150, "exactly 100 + 50 admitted (used {used})");
    assert_eq!(used, 150);
    let (rem, expected) = stored_rem(&app, "midgrant", "conversations").await;
    assert_eq!(rem, expected);
}

/// Consumes race a grant's expiry across the instant: each request's clock
/// is its own, half of them before the expiry and half at or after it,
/// interleaved and sent at once. Every unit admitted was asked for before
/// the expiry (after it, none fits the plan's limit alone); the grant comes
/// off the counter, and is reported, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn consumes_racing_a_grants_expiry_take_it_off_once_and_admit_nothing_on_it() {
    use lambda_http::http::Method;
    let _burst = ONE_BURST_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::new("2026-03-10T12:00:00Z").await);
    app.org("lapse", json!({ "plan": "free" })).await;
    let at: chrono::DateTime<chrono::Utc> = "2026-03-10T13:00:00Z".parse().unwrap();
    let g = app
        .grant(
            "lapse",
            json!({ "resource": "conversations", "amount": 50, "expiresAt": at.to_rfc3339(), "reason": "r" }),
        )
        .await;
    assert_eq!(g.status, 201);
    assert_eq!(app.consume("lapse", "conversations", 120).await.status, 200);
    let tasks = (0..100i64).map(|i| {
        let app = Arc::clone(&app);
        // Alternately just before and at or after the expiry.
        let when = if i % 2 == 0 {
            at - chrono::Duration::milliseconds(50 - i / 2)
        } else {
            at + chrono::Duration::milliseconds(i / 2)
        };
        tokio::spawn(async move {
            let deps = quota_shared::Deps { clock: quota_shared::Clock::fixed(when), ..app.deps.clone() };
            let body = json!({ "amount": 1 }).to_string();
            let r = app
                .send_via(
                    &deps,
                    Method::POST,
                    "/v1/orgs/lapse/usage/conversations/consume",
                    Some(&body),
                    &[],
                    &quota_tests::APP,
                )
                .await;
            (when, r.status)
        })
    });
    let all: Vec<(chrono::DateTime<chrono::Utc>, u16)> =
        join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let admitted: Vec<_> = all.iter().filter(|(_, s)| *s == 200).collect();
    assert!(all.iter().all(|(_, s)| matches!(s, 200 | 429)), "{all:?}");
    assert!(admitted.iter().all(|(when, _)| *when < at), "nothing admitted at or after the expiry: {admitted:?}");
    assert!(admitted.len() <= 30, "at most the grant's room: {}", admitted.len());
    let expired = app.events("lapse").into_iter().filter(|(k, _)| k == "GrantExpired").count();
    assert_eq!(expired, 1, "taken off, and reported, once");
    let stored = app.stored_counter("lapse", "conversations").await;
    assert_eq!((stored.used, stored.limit, stored.grants.len()), (120 + admitted.len() as i64, Some(100), 0));
    let (rem, expected) = stored_rem(&app, "lapse", "conversations").await;
    assert_eq!(rem, expected);
}
