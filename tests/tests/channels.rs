//! Notification channels: an org's webhooks, Slack and Discord, managed
//! through the API and delivered in-process (as `quota-local` does) to a
//! receiver on loopback. No test reaches beyond loopback: names resolve from
//! the tests' own table, and the deliveries' sender connects to loopback
//! only, whatever a URL says.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::Method;
use quota_tests::receiver::{Received, Receiver};
use quota_tests::{ADMIN, APP, Auth, Fault, HOOKS_HOST, RECEIVER_HOST, Reply, Rule, TestApp, Value, json, until};
use sha2::Sha256;

fn channels(org: &str) -> String {
    format!("/v1/orgs/{org}/channels")
}

/// A webhook channel for `events` to `url`, added as `auth`.
async fn add(app: &TestApp, org: &str, kind: &str, url: &str, events: &[&str], auth: &Auth) -> Reply {
    app.post(&channels(org), json!({ "type": kind, "url": url, "events": events }), auth).await
}

/// The channel's deliveries, once `n` of them are settled (delivered or failed).
async fn settled(app: &TestApp, org: &str, channel: &str, n: usize) -> Vec<Value> {
    let path = format!("{}/{channel}/deliveries?limit=100", channels(org));
    until(&format!("{n} settled deliveries"), || async {
        let reply = app.get(&path, &ADMIN).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let list = reply.body["deliveries"].as_array().cloned().unwrap_or_default();
        let done = list.iter().filter(|d| d["status"] == "delivered" || d["status"] == "failed").count();
        (list.len() == n && done == n).then_some(list)
    })
    .await
}

/// Checks a request as a Standard Webhooks receiver would: the signature
/// over `{id}.{timestamp}.{body}` under the secret's decoded key.
fn verify(secret: &str, got: &Received) {
    let id = got.header("webhook-id").expect("webhook-id");
    let timestamp = got.header("webhook-timestamp").expect("webhook-timestamp");
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", got.body).as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(got.header("webhook-signature"), Some(expected.as_str()), "signature of {id}");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "a timestamp of now, on the wall clock: {age} s old");
}

#[tokio::test]
async fn a_webhook_gets_exactly_one_signed_delivery_per_threshold_crossed() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::start().await;
    let org = app.unique("hooked");
    app.org(&org, json!({ "plan": "free" })).await;
    let added =
        add(&app, &org, "webhook", &receiver.url("/hooks/quota"), &["QuotaThresholdCrossed", "QuotaExceeded"], &ADMIN)
            .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let secret = added.body["secret"].as_str().expect("a webhook's secret, on creation").to_string();
    let channel = added.body["id"].as_str().unwrap().to_string();
    assert_eq!(added.body["events"], json!(["QuotaThresholdCrossed", "QuotaExceeded"]));

    // 80 %, then 100 % (and the limit reached): three events, each delivered once.
    assert_eq!(app.consume(&org, "conversations", 80).await.status, 200);
    assert_eq!(app.consume(&org, "conversations", 20).await.status, 200);
    let deliveries = settled(&app, &org, &channel, 3).await;
    assert!(deliveries.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{deliveries:?}");

    let published: Vec<(String, Value)> = app
        .events(&org)
        .into_iter()
        .filter(|(kind, _)| kind == "QuotaThresholdCrossed" || kind == "QuotaExceeded")
        .collect();
    assert_eq!(published.len(), 3, "{published:?}");
    let got = receiver.received();
    assert_eq!(got.len(), 3, "one request per event: {got:?}");
    let mut seen = Vec::new();
    for request in &got {
        verify(&secret, request);
        assert_eq!(request.path, "/hooks/quota");
        let body = request.json();
        assert_eq!(body["data"]["orgId"], org.as_str());
        seen.push((body["type"].as_str().unwrap().to_string(), body["data"]["threshold"].clone()));
        assert!(published.iter().any(|(kind, detail)| body["type"] == kind.as_str() && &body["data"] == detail));
    }
    seen.sort_by_key(|(k, t)| (k.clone(), t.to_string()));
    assert_eq!(
        seen,
        [
            ("QuotaExceeded".to_string(), Value::Null),
            ("QuotaThresholdCrossed".to_string(), json!(100)),
            ("QuotaThresholdCrossed".to_string(), json!(80)),
        ]
    );
    let ids: std::collections::BTreeSet<_> = got.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3, "one id per event");
    let listed: std::collections::BTreeSet<_> =
        deliveries.iter().map(|d| d["webhookId"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, listed, "the deliveries list names the ids the receiver saw");
}

#[tokio::test]
async fn a_receiver_that_fails_twice_then_succeeds_gets_the_same_id_three_times_and_nothing_more() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::answering(&[503, 500, 200]).await;
    let org = app.unique("flaky");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/h"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    app.consume(&org, "conversations", 85).await;

    let deliveries = settled(&app, &org, &channel, 1).await;
    let d = &deliveries[0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("delivered"), Some(3)), "{d}");
    let codes: Vec<&Value> = d["history"].as_array().unwrap().iter().map(|a| &a["responseCode"]).collect();
    assert_eq!(codes, [&json!(503), &json!(500), &json!(200)]);
    let got = receiver.received();
    assert_eq!(got.len(), 3, "three attempts, nothing after the success");
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    assert!(ids.iter().all(|id| *id == d["webhookId"].as_str().unwrap()), "one id on every attempt: {ids:?}");
    assert!(got.iter().all(|r| r.body == got[0].body), "the same body on every attempt");
}

#[tokio::test]
async fn a_receiver_that_never_answers_well_is_failed_after_the_last_attempt() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    // The whole day-long schedule, shortened to about a second.
    app.deliver_to_channels(0.000_01);
    let receiver = Receiver::answering(&[500]).await;
    let org = app.unique("down");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/h"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    app.consume(&org, "conversations", 90).await;
    let deliveries = settled(&app, &org, &channel, 1).await;
    let max = quota_shared::domain::webhook::MAX_ATTEMPTS;
    assert_eq!(
        (deliveries[0]["status"].as_str(), deliveries[0]["attempts"].as_u64()),
        (Some("failed"), Some(u64::from(max)))
    );
    assert_eq!(receiver.received().len(), max as usize);
}

#[tokio::test]
async fn a_receiver_that_hangs_does_not_slow_consumes() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::start().await;
    receiver.hold();
    let org = app.unique("hang");
    app.org(&org, json!({ "plan": "growth" })).await;
    add(&app, &org, "webhook", &receiver.url("/h"), &["QuotaThresholdCrossed"], &ADMIN).await;
    // 80 % of 300: a delivery begins, and the receiver holds it.
    assert_eq!(app.consume(&org, "conversations", 240).await.status, 200);
    until("the receiver holding the delivery", || async { (receiver.held() >= 1).then_some(()) }).await;
    // Every consume answers while no delivery has had its answer.
    for _ in 0..20 {
        assert_eq!(app.consume(&org, "conversations", 1).await.status, 200);
    }
    assert_eq!(app.resource_usage(&org, "conversations").await["used"], 260);
    assert_eq!(receiver.answered(), 0, "the consumes answered while the receiver answered nothing");
    receiver.release();
}

#[tokio::test]
async fn urls_inside_a_network_are_refused_before_anything_is_kept() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("ssrf");
    app.org(&org, json!({ "plan": "free" })).await;
    let code = |reply: &Reply| (reply.status, reply.body["error"]["code"].as_str().unwrap_or_default().to_string());
    for (url, expected) in [
        ("https://10.0.0.5/hook", "CHANNEL_URL_FORBIDDEN"),
        ("https://169.254.169.254/latest/meta-data/", "CHANNEL_URL_FORBIDDEN"),
        ("https://[fd00:ec2::254]/", "CHANNEL_URL_FORBIDDEN"),
        ("https://0xa9.0xfe.0xa9.0xfe/", "CHANNEL_URL_FORBIDDEN"),
        ("https://intranet.quota-tests.example/hook", "CHANNEL_URL_FORBIDDEN"),
        ("https://metadata.quota-tests.example/", "CHANNEL_URL_FORBIDDEN"),
        ("https://mixed.quota-tests.example/hook", "CHANNEL_URL_FORBIDDEN"),
        ("https://nowhere.quota-tests.example/hook", "CHANNEL_URL_UNRESOLVED"),
        ("http://hooks.quota-tests.example/hook", "CHANNEL_URL_NOT_HTTPS"),
        ("ftp://hooks.quota-tests.example/hook", "CHANNEL_URL_NOT_HTTPS"),
        ("https://user:pw@hooks.quota-tests.example/", "CHANNEL_URL_INVALID"),
    ] {
        let reply = add(&app, &org, "webhook", url, &["QuotaExceeded"], &ADMIN).await;
        assert_eq!(code(&reply), (400, expected.to_string()), "{url}: {}", reply.body);
    }
    // Locally (the flag the tests run with), loopback is allowed, and a public name.
    let local = add(&app, &org, "webhook", "http://127.0.0.1:9/hook", &["QuotaExceeded"], &ADMIN).await;
    assert_eq!(local.status, 201, "{}", local.body);
    let named = add(&app, &org, "slack", &format!("http://{RECEIVER_HOST}:9/x"), &["QuotaExceeded"], &ADMIN).await;
    assert_eq!(code(&named), (400, "CHANNEL_URL_NOT_HTTPS".into()), "plain http to a name, even one for loopback");
    let public =
        add(&app, &org, "slack", &format!("https://{HOOKS_HOST}/services/T/B/x"), &["QuotaExceeded"], &ADMIN).await;
    assert_eq!(public.status, 201, "{}", public.body);
    assert_eq!(public.body.get("secret"), None, "only a webhook has a secret");
    let listed = app.get(&channels(&org), &ADMIN).await;
    assert_eq!(listed.body["channels"].as_array().unwrap().len(), 2, "nothing refused was kept");

    // Without the flag (as in AWS): loopback is refused too.
    let mut aws = app.deps.clone();
    aws.net.reach = quota_shared::domain::channel::Reach::PUBLIC;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        &format!("https://{RECEIVER_HOST}/x"),
    ] {
        let body = json!({ "type": "webhook", "url": url, "events": ["QuotaExceeded"] }).to_string();
        let reply = app.send_via(&aws, Method::POST, &channels(&org), Some(&body), &[], &ADMIN).await;
        assert_eq!(code(&reply), (400, "CHANNEL_URL_FORBIDDEN".into()), "{url}: {}", reply.body);
    }
}

#[tokio::test]
async fn bad_channels_get_a_clear_code() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("badch");
    app.org(&org, json!({ "plan": "free" })).await;
    let url = format!("https://{HOOKS_HOST}/h");
    for (body, status, code) in [
        (json!({ "type": "teams", "url": url, "events": ["QuotaExceeded"] }), 400, "UNKNOWN_CHANNEL_TYPE"),
        (json!({ "type": "webhook", "url": url, "events": ["QuotaExeeded"] }), 400, "UNKNOWN_EVENT"),
        (json!({ "type": "webhook", "url": url, "events": ["QuotaReset"] }), 400, "UNKNOWN_EVENT"),
        (json!({ "type": "webhook", "url": url, "events": [] }), 400, "INVALID_REQUEST"),
        (json!({ "type": "webhook", "url": url }), 400, "INVALID_REQUEST"),
        (json!({ "type": "webhook", "url": url, "events": ["QuotaExceeded"], "extra": 1 }), 400, "INVALID_REQUEST"),
        (json!({ "url": url, "events": ["QuotaExceeded"] }), 400, "INVALID_REQUEST"),
    ] {
        let reply = app.post(&channels(&org), body.clone(), &ADMIN).await;
        assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (status, Some(code)), "{body}");
    }
    let missing = add(&app, "no-such-org", "webhook", &url, &["QuotaExceeded"], &ADMIN).await;
    assert_eq!((missing.status, missing.body["error"]["code"].as_str()), (404, Some("ORG_NOT_FOUND")));
    let unknown =
        app.send(Method::DELETE, &format!("{}/chn_000000000000000000000000", channels(&org)), None, &[], &ADMIN).await;
    assert_eq!((unknown.status, unknown.body["error"]["code"].as_str()), (404, Some("CHANNEL_NOT_FOUND")));
    let malformed = app.get(&format!("{}/not-an-id/deliveries", channels(&org)), &ADMIN).await;
    assert_eq!(malformed.status, 404);
}

#[tokio::test]
async fn an_org_manages_its_own_channels_and_no_one_elses() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let (own, other) = (app.unique("own"), app.unique("other"));
    app.org(&own, json!({ "plan": "free" })).await;
    app.org(&other, json!({ "plan": "free" })).await;
    let url = format!("https://{HOOKS_HOST}/h");
    let theirs = add(&app, &other, "webhook", &url, &["QuotaExceeded"], &ADMIN).await;
    let theirs = theirs.body["id"].as_str().unwrap().to_string();

    let own_name: &'static str = Box::leak(own.clone().into_boxed_str());
    let customer = Auth::Token { sub: "customer", scope: "quota:read quota:write", org: Some(own_name) };
    let mine = add(&app, &own, "discord", &url, &["QuotaExceeded"], &customer).await;
    assert_eq!(mine.status, 201, "{}", mine.body);
    assert_eq!(app.get(&channels(&own), &customer).await.status, 200);

    let forbidden = |r: Reply| (r.status, r.body["error"]["code"].as_str().map(str::to_string));
    let refused = (403, Some("FORBIDDEN".to_string()));
    assert_eq!(forbidden(app.get(&channels(&other), &customer).await), refused);
    assert_eq!(forbidden(add(&app, &other, "webhook", &url, &["QuotaExceeded"], &customer).await), refused);
    let theirs_path = format!("{}/{theirs}", channels(&other));
    assert_eq!(forbidden(app.send(Method::DELETE, &theirs_path, None, &[], &customer).await), refused);
    assert_eq!(forbidden(app.get(&format!("{theirs_path}/deliveries"), &customer).await), refused);
    // An app's own token (bound to no org) manages no customer's channels; a read-only one neither.
    assert_eq!(forbidden(app.get(&channels(&own), &APP).await), refused);
    let reader = Auth::Token { sub: "reader", scope: "quota:read", org: Some(own_name) };
    assert_eq!(forbidden(app.get(&channels(&own), &reader).await), refused);
    // The other org's channel is still there.
    assert_eq!(app.get(&channels(&other), &ADMIN).await.body["channels"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_org_keeps_at_most_ten_channels_however_many_are_added_at_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("ten");
    app.org(&org, json!({ "plan": "free" })).await;
    let url = format!("https://{HOOKS_HOST}/h");
    let replies =
        futures::future::join_all((0..14).map(|_| add(&app, &org, "webhook", &url, &["QuotaExceeded"], &ADMIN))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let full = replies.iter().filter(|r| r.status == 409 && r.body["error"]["code"] == "TOO_MANY_CHANNELS").count();
    assert_eq!((created, full), (10, 4), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let listed = app.get(&channels(&org), &ADMIN).await.body["channels"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|c| c.get("secret").is_none()), "a secret is shown once, on creation");
    // One removed: room for one more, and the audit log has both.
    let first = listed[0]["id"].as_str().unwrap();
    let removed = app.send(Method::DELETE, &format!("{}/{first}", channels(&org)), None, &[], &ADMIN).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(add(&app, &org, "slack", &url, &["QuotaExceeded"], &ADMIN).await.status, 201);
    assert_eq!(add(&app, &org, "slack", &url, &["QuotaExceeded"], &ADMIN).await.status, 409);
    let audit = app.get(&format!("/v1/admin/orgs/{org}/audit?limit=500"), &ADMIN).await;
    let actions: Vec<&str> =
        audit.body["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "channel_added").count(), 11);
    assert_eq!(actions.iter().filter(|a| **a == "channel_removed").count(), 1);
    let entry = audit.body["entries"].as_array().unwrap().iter().find(|e| e["action"] == "channel_removed").unwrap();
    assert_eq!(entry["actor"], "admin@ops");
    assert_eq!(entry["before"]["id"], first);
    assert!(!audit.body.to_string().contains("whsec_"), "no secret in the audit log");
}

#[tokio::test]
async fn a_keyed_creation_retried_answers_the_channel_it_made() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("keyed");
    app.org(&org, json!({ "plan": "free" })).await;
    let body =
        json!({ "type": "webhook", "url": format!("https://{HOOKS_HOST}/h"), "events": ["QuotaExceeded"] }).to_string();
    let send = |body: String| {
        let path = channels(&org);
        let app = &app;
        async move { app.send(Method::POST, &path, Some(&body), &[("idempotency-key", "add-1")], &ADMIN).await }
    };
    let first = send(body.clone()).await;
    let again = send(body.clone()).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!((&again.body["id"], &again.body["secret"]), (&first.body["id"], &first.body["secret"]));
    assert_eq!(app.get(&channels(&org), &ADMIN).await.body["channels"].as_array().unwrap().len(), 1);
    let other = body.replace("QuotaExceeded", "TrialExpired");
    assert_eq!(send(other).await.body["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn slack_and_discord_get_the_message_in_the_orgs_language() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::start().await;
    let org = app.unique("chat");
    app.org(&org, json!({ "plan": "free", "locale": "da" })).await;
    let slack = add(&app, &org, "slack", &receiver.url("/slack"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let discord = add(&app, &org, "discord", &receiver.url("/discord"), &["QuotaThresholdCrossed"], &ADMIN).await;
    app.consume(&org, "conversations", 80).await;
    settled(&app, &org, slack.body["id"].as_str().unwrap(), 1).await;
    settled(&app, &org, discord.body["id"].as_str().unwrap(), 1).await;
    let got = receiver.received();
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().json();
    let text = format!("⚠️ `{org}`: Samtaler har nået 80% (80 af 100 brugt).");
    assert_eq!(by_path("/slack")["text"], format!("{text}\n<{}|Se forbrug>", quota_tests::DASHBOARD));
    assert_eq!(by_path("/discord")["content"], format!("{text}\n[Se forbrug]({})", quota_tests::DASHBOARD));
    assert!(got.iter().all(|r| r.header("webhook-signature").is_none()), "chats are not signed");
}

/// The queue the deliverer's deliveries go through (moto's SQS), its
/// dead-letter queue, and the deliverer, for `app`.
async fn deliverer(app: &TestApp, name: &str) -> (deliver_channels::Deliverer, aws_sdk_sqs::Client, String, String) {
    let aws = quota_tests::aws_config().await;
    let moto = std::env::var("MOTO_URL").expect("MOTO_URL: run with scripts/test");
    let sqs = aws_sdk_sqs::Client::from_conf(deliver_channels::sqs_config(&aws).endpoint_url(moto).build());
    // Visibility 0: a message received is visible again at once, unless
    // the function hides it (its backoff), so the tests see what it did.
    let make = |n: String| {
        let sqs = sqs.clone();
        async move {
            let made = sqs
                .create_queue()
                .queue_name(n)
                .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "0");
            made.send().await.expect("a queue").queue_url().unwrap().to_string()
        }
    };
    let (queue_url, dead_url) = (make(format!("ch-{name}")).await, make(format!("ch-{name}-dead")).await);
    let queues = deliver_channels::Queues { queue_url: queue_url.clone(), dead_letters_url: dead_url.clone() };
    let deliverer = deliver_channels::Deliverer::new(&app.deps, sqs.clone(), queues, quota_tests::DASHBOARD);
    (deliverer, sqs, queue_url, dead_url)
}

/// The rule's message (the fixture, as SQS hands it over) for `org`.
fn rule_batch(org: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let fixture = include_str!("../../events/sqs-channel-event.json");
    let mut batch: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(fixture).unwrap();
    let mut body: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    body["detail"]["orgId"] = json!(org);
    batch.records[0].body = Some(body.to_string());
    batch
}

/// What is visible in `queue` now.
async fn visible(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
    got.messages().to_vec()
}

/// A queued message, handed to the function as the event source mapping would.
fn batch_of(message: &aws_sdk_sqs::types::Message) -> aws_lambda_events::event::sqs::SqsEvent {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_string);
    record.receipt_handle = message.receipt_handle().map(str::to_string);
    record.body = message.body().map(str::to_string);
    // Receive counts the function must not take for attempts.
    record.attributes.insert("ApproximateReceiveCount".into(), "5".into());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

/// The deployed path: the rule's message fans out into a delivery sent to
/// the queue (moto's SQS); handed over as the event source mapping would,
/// it fails twice (hidden for the schedule's wait: after its second failure
/// five minutes, so nothing is visible), then is delivered with the same id;
/// a repeat of the event queues nothing more.
#[tokio::test]
async fn the_deliverer_fans_out_and_retries_through_its_queue() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::answering(&[500, 500, 204]).await;
    let org = app.unique("queued");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/q"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    let (deliverer, sqs, queue_url, _) = deliverer(&app, &org).await;

    assert!(deliverer.handle(rule_batch(&org)).await.batch_item_failures.is_empty(), "fanned out");
    let queued = visible(&sqs, &queue_url).await;
    assert_eq!(queued.len(), 1, "one delivery for the one channel");
    let path = format!("{}/{channel}/deliveries", channels(&org));
    let state = || async {
        let d = app.get(&path, &ADMIN).await.body["deliveries"][0].clone();
        (d["status"].as_str().unwrap().to_string(), d["attempts"].as_u64().unwrap())
    };
    assert_eq!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.len(), 1, "the 500 comes back");
    assert_eq!(state().await, ("retrying".to_string(), 1), "numbered by its record, not the receive count");
    assert_eq!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.len(), 1);
    assert_eq!(state().await, ("retrying".to_string(), 2));
    assert!(visible(&sqs, &queue_url).await.is_empty(), "hidden for the second wait (5 minutes), by the function");
    assert!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.is_empty(), "delivered");
    assert_eq!(state().await, ("delivered".to_string(), 3));
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.header("webhook-id") == got[0].header("webhook-id")));
    assert_eq!(got[0].json()["data"]["orgId"], org.as_str());

    // SQS hands the rule's message over again (at least once): nothing more is queued.
    assert!(deliverer.handle(rule_batch(&org)).await.batch_item_failures.is_empty());
    assert_eq!(receiver.received().len(), 3);
}

/// Hand-overs of one event before any attempt (SQS's at-least-once, an
/// EventBridge retry) queue its delivery once; two copies of one delivery
/// attempted at once leave it delivered, whichever answer comes first.
#[tokio::test]
async fn repeated_hand_overs_queue_once_and_racing_copies_end_delivered() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::answering(&[500, 204]).await;
    let org = app.unique("twice");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/t"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    let (deliverer, sqs, queue_url, _) = deliverer(&app, &org).await;
    for _ in 0..3 {
        assert!(deliverer.handle(rule_batch(&org)).await.batch_item_failures.is_empty());
    }
    let queued = visible(&sqs, &queue_url).await;
    assert_eq!(queued.len(), 1, "one delivery, however often its event came");

    receiver.hold();
    let both = futures::future::join(deliverer.handle(batch_of(&queued[0])), deliverer.handle(batch_of(&queued[0])));
    let release = async {
        until("both copies at the receiver", || async { (receiver.held() == 2).then_some(()) }).await;
        receiver.release();
    };
    let ((first, second), ()) = futures::future::join(both, release).await;
    // The copy that got the 500 comes back only if it was recorded before the 204.
    let back = first.batch_item_failures.len() + second.batch_item_failures.len();
    assert!(back <= 1, "{back}");
    let d = app.get(&format!("{}/{channel}/deliveries", channels(&org)), &ADMIN).await.body["deliveries"][0].clone();
    assert_eq!(d["status"], "delivered", "{d}");
    // Received again, a delivered delivery is done with, and sends nothing.
    assert!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.is_empty());
    assert_eq!(receiver.received().len(), 2);
}

/// The last attempt's failure: recorded `failed`, and the message moved to
/// the dead-letter queue by the function (not left to the queue's redrive).
#[tokio::test]
async fn the_last_failed_attempt_is_dead_lettered_and_shown_failed() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::answering(&[500]).await;
    let org = app.unique("dead");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/d"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    let (deliverer, sqs, queue_url, dead_url) = deliverer(&app, &org).await;
    deliverer.handle(rule_batch(&org)).await;
    let queued = visible(&sqs, &queue_url).await;
    let max = quota_shared::domain::webhook::MAX_ATTEMPTS;
    for attempt in 1..=max {
        let failures = deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.len();
        assert_eq!(failures, usize::from(attempt < max), "attempt {attempt}: done with only after the last");
    }
    let d = app.get(&format!("{}/{channel}/deliveries", channels(&org)), &ADMIN).await.body["deliveries"][0].clone();
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(u64::from(max))));
    let dead = visible(&sqs, &dead_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), queued[0].body(), "the delivery, as queued");
    assert_eq!(receiver.received().len(), max as usize);
}

#[tokio::test]
async fn a_channels_url_is_shown_masked_but_to_its_creator() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("masked");
    app.org(&org, json!({ "plan": "free" })).await;
    let url = format!("https://{HOOKS_HOST}/services/T0AAA/B0BBB/s3cr3tTOKENa1B2");
    let added = add(&app, &org, "slack", &url, &["QuotaExceeded"], &ADMIN).await;
    assert_eq!(added.body["url"], url.as_str(), "its creator sees what it sent");
    let id = added.body["id"].as_str().unwrap();
    let listed = app.get(&channels(&org), &ADMIN).await;
    assert_eq!(listed.body["channels"][0]["url"], format!("https://{HOOKS_HOST}/…a1B2"));
    let removed = app.send(Method::DELETE, &format!("{}/{id}", channels(&org)), None, &[], &ADMIN).await;
    let audit = app.get(&format!("/v1/admin/orgs/{org}/audit"), &ADMIN).await;
    for (what, reply) in [("list", &listed), ("removal", &removed), ("audit log", &audit)] {
        assert!(!reply.body.to_string().contains("s3cr3tTOKEN"), "the {what} shows the URL's token: {}", reply.body);
    }
}

#[tokio::test]
async fn a_creation_key_answers_its_creator_only_and_for_24_hours() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("keyowner");
    app.org(&org, json!({ "plan": "free" })).await;
    let body =
        json!({ "type": "webhook", "url": format!("https://{HOOKS_HOST}/h"), "events": ["QuotaExceeded"] }).to_string();
    let send = |auth: Auth| {
        let (path, body, app) = (channels(&org), body.clone(), &app);
        async move { app.send(Method::POST, &path, Some(&body), &[("idempotency-key", "k-1")], &auth).await }
    };
    let first = send(ADMIN).await;
    assert_eq!(first.status, 201);
    let org_name: &'static str = Box::leak(org.clone().into_boxed_str());
    let customer = Auth::Token { sub: "customer", scope: "quota:write", org: Some(org_name) };
    let other = send(customer).await;
    assert_eq!(other.body["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "another caller gets no one's secret");
    assert!(!other.body.to_string().contains("whsec_"));
    // A day on, the key is free again (whether or not TTL removed its record).
    app.advance(chrono::Duration::hours(25));
    let later = send(ADMIN).await;
    assert_eq!(later.status, 201);
    assert_ne!(later.body["id"], first.body["id"]);
}

/// A resolver that never answers: the customer's DNS, made slow.
#[derive(Debug)]
struct Stalling;

impl quota_shared::outbound::http::Resolve for Stalling {
    fn resolve<'a>(
        &'a self,
        _: &'a str,
        _: u16,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Vec<std::net::IpAddr>>> {
        Box::pin(futures::future::pending())
    }
}

#[tokio::test]
async fn a_host_whose_dns_never_answers_is_refused_within_the_requests_bounds() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("slowdns");
    app.org(&org, json!({ "plan": "free" })).await;
    let mut slow = app.deps.clone();
    slow.net.resolver = std::sync::Arc::new(Stalling);
    let body =
        json!({ "type": "webhook", "url": format!("https://{HOOKS_HOST}/h"), "events": ["QuotaExceeded"] }).to_string();
    let reply = tokio::time::timeout(
        quota_shared::timeouts::WORST_CASE_REQUEST,
        app.send_via(&slow, Method::POST, &channels(&org), Some(&body), &[], &ADMIN),
    )
    .await
    .expect("an answer within the longest a request may take");
    assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (400, Some("CHANNEL_URL_UNRESOLVED")));
}

#[tokio::test]
async fn a_webhook_whose_secret_is_unreadable_is_never_sent_unsigned() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::start().await;
    let org = app.unique("nosecret");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/s"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let id = added.body["id"].as_str().unwrap();
    // The secret lost (an item edited by hand, say).
    let store = &app.direct.store;
    use aws_sdk_dynamodb::types::AttributeValue::S;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", S(format!("ORG#{org}")))
        .key("sk", S(format!("CHANNEL#{id}")))
        .update_expression("SET secret = :s")
        .expression_attribute_values(":s", S("whsec_".into()))
        .send()
        .await
        .unwrap();
    let (deliverer, sqs, queue_url, _) = deliverer(&app, &org).await;
    deliverer.handle(rule_batch(&org)).await;
    let queued = visible(&sqs, &queue_url).await;
    assert!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.is_empty(), "done with: nothing to send");
    assert!(receiver.received().is_empty(), "nothing signed with an empty key");
    let d = app.get(&format!("{}/{id}/deliveries", channels(&org)), &ADMIN).await.body["deliveries"][0].clone();
    assert_eq!(d["status"], "failed", "shown, with why: {d}");
    assert!(d["history"][0]["error"].as_str().unwrap().contains("secret"), "{d}");
}

/// A hand-over that made a delivery's record and stopped before marking it
/// queued leaves it to itself for a while: another hand-over of the event
/// meanwhile comes back later rather than start a second chain.
#[tokio::test]
async fn a_hand_over_that_stopped_half_way_starts_no_second_chain() {
    let app = TestApp::with_faults("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::start().await;
    let org = app.unique("halfway");
    app.org(&org, json!({ "plan": "free" })).await;
    add(&app, &org, "webhook", &receiver.url("/h"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let (deliverer, sqs, queue_url, _) = deliverer(&app, &org).await;
    // Queued, but not marked queued (every UpdateItem fails for now).
    app.faults().dynamodb.inject(Rule::on("UpdateItem", Fault::InternalError));
    assert_eq!(deliverer.handle(rule_batch(&org)).await.batch_item_failures.len(), 1, "the event comes back");
    app.faults().dynamodb.clear();
    // The event again, at once: the first hand-over may still be queueing it.
    assert_eq!(deliverer.handle(rule_batch(&org)).await.batch_item_failures.len(), 1, "comes back again");
    assert_eq!(visible(&sqs, &queue_url).await.len(), 1, "one delivery in the queue, not two");
}

/// Two copies of a delivery at its last attempt: one records it failed and
/// dead-letters it; the other, behind, changes nothing.
#[tokio::test]
async fn a_last_attempt_is_recorded_and_dead_lettered_once() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let receiver = Receiver::answering(&[500]).await;
    let org = app.unique("lastonce");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/l"), &["QuotaThresholdCrossed"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();
    let (deliverer, sqs, queue_url, dead_url) = deliverer(&app, &org).await;
    deliverer.handle(rule_batch(&org)).await;
    let queued = visible(&sqs, &queue_url).await;
    let max = quota_shared::domain::webhook::MAX_ATTEMPTS;
    for _ in 1..max {
        deliverer.handle(batch_of(&queued[0])).await;
    }
    receiver.hold();
    let both = futures::future::join(deliverer.handle(batch_of(&queued[0])), deliverer.handle(batch_of(&queued[0])));
    let release = async {
        until("both copies at the receiver", || async { (receiver.held() == 2).then_some(()) }).await;
        receiver.release();
    };
    let ((a, b), ()) = futures::future::join(both, release).await;
    assert_eq!(a.batch_item_failures.len() + b.batch_item_failures.len(), 0, "both done with");
    assert_eq!(visible(&sqs, &dead_url).await.len(), 1, "dead-lettered once");
    let d = app.get(&format!("{}/{channel}/deliveries", channels(&org)), &ADMIN).await.body["deliveries"][0].clone();
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(u64::from(max))), "{d}");
    // Received again, a failed delivery is done with: no second dead letter.
    assert!(deliverer.handle(batch_of(&queued[0])).await.batch_item_failures.is_empty());
    assert_eq!(visible(&sqs, &dead_url).await.len(), 1);
}
#[tokio::test]
async fn quota_recovered_after_a_reset_and_after_a_grant() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::start().await;
    let org = app.unique("recover");
    app.org(&org, json!({ "plan": "free" })).await;
    let added = add(&app, &org, "webhook", &receiver.url("/h"), &["QuotaRecovered"], &ADMIN).await;
    let channel = added.body["id"].as_str().unwrap().to_string();

    // 85 %, then an admin's reset: back below 80 %.
    app.consume(&org, "conversations", 85).await;
    let reset = app
        .post(
            &format!("/v1/admin/orgs/{org}/reset"),
            json!({ "resource": "conversations", "reason": "ticket 7" }),
            &ADMIN,
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    settled(&app, &org, &channel, 1).await;
    // 100 %, then 50 more granted: 100 of 150 is below 80 % again.
    app.consume(&org, "conversations", 100).await;
    let grant = app.grant(&org, json!({ "resource": "conversations", "amount": 50, "reason": "promo" })).await;
    assert_eq!(grant.status, 201, "{}", grant.body);
    settled(&app, &org, &channel, 2).await;

    let got: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|b| b["type"] == "QuotaRecovered"));
    let summary: Vec<(Value, Value, Value)> = got
        .iter()
        .map(|b| (b["data"]["cause"].clone(), b["data"]["threshold"].clone(), b["data"]["used"].clone()))
        .collect();
    assert!(summary.contains(&(json!("reset"), json!(80), json!(0))), "{summary:?}");
    assert!(summary.contains(&(json!("grant"), json!(100), json!(100))), "{summary:?}");
}

#[tokio::test]
async fn quota_recovered_after_a_plan_change_and_in_a_new_period() {
    let mut app = TestApp::new("2026-03-10T12:00:00Z").await;
    app.deliver_to_channels(0.001);
    let receiver = Receiver::start().await;
    let (upgraded, renewed) = (app.unique("upgraded"), app.unique("renewed"));
    app.org(&upgraded, json!({ "plan": "free" })).await;
    app.org(&renewed, json!({ "plan": "basic" })).await;
    let mut ids = Vec::new();
    for org in [&upgraded, &renewed] {
        let added = add(&app, org, "webhook", &receiver.url(&format!("/{org}")), &["QuotaRecovered"], &ADMIN).await;
        ids.push(added.body["id"].as_str().unwrap().to_string());
    }
    // 90 of 100 on free, then growth (300): 30 %.
    app.consume(&upgraded, "conversations", 90).await;
    app.org(&upgraded, json!({ "plan": "growth" })).await;
    settled(&app, &upgraded, &ids[0], 1).await;
    // 120 of 100 on basic (soft), then the period ends: the new one starts at 0.
    app.consume(&renewed, "conversations", 120).await;
    app.set_now("2026-04-01T00:15:00Z");
    app.run_job().await;
    settled(&app, &renewed, &ids[1], 1).await;

    let by_path = |p: String| receiver.received().into_iter().find(|r| r.path == p).map(|r| r.json()).unwrap();
    let up = by_path(format!("/{upgraded}"));
    assert_eq!(
        (&up["data"]["cause"], &up["data"]["threshold"], &up["data"]["limit"]),
        (&json!("plan_change"), &json!(80), &json!(300))
    );
    let renew = by_path(format!("/{renewed}"));
    assert_eq!(
        (&renew["data"]["cause"], &renew["data"]["threshold"], &renew["data"]["used"]),
        (&json!("new_period"), &json!(120), &json!(0))
    );
    // Published with the period's close, under its claim: a second run publishes neither again.
    app.run_job().await;
    let recovered = app.events(&renewed).into_iter().filter(|(k, _)| k == "QuotaRecovered").count();
    assert_eq!(recovered, 1);
}

/// Changes that do not take usage below a threshold it had reached report
/// no recovery: soft to hard at the same limit, a limit of 0, a grant too
/// small to bring it under.
#[tokio::test]
async fn no_recovery_is_reported_when_usage_is_not_back_below() {
    let app = TestApp::new("2026-03-10T12:00:00Z").await;
    let org = app.unique("norecover");
    app.org(&org, json!({ "plan": "basic" })).await;
    app.consume(&org, "conversations", 130).await;
    app.org(&org, json!({ "plan": "free" })).await;
    app.org(&org, json!({ "limits": { "conversations": 0 } })).await;
    app.org(&org, json!({ "limits": { "conversations": null } })).await;
    app.grant(&org, json!({ "resource": "conversations", "amount": 5, "reason": "small" })).await;
    let recovered: Vec<Value> =
        app.events(&org).into_iter().filter(|(k, _)| k == "QuotaRecovered").map(|(_, d)| d).collect();
    assert!(recovered.is_empty(), "{recovered:?}");
}
