//! IAM as AWS checks it: each function's calls, signed with an access key
//! of its own (as each function's role signs them), are recorded by the
//! proxies in front of DynamoDB Local and moto: every action, each item of
//! a `TransactWriteItems` as its own (DynamoDB authorizes each), on which
//! resource, and each event's `source`. A tour through every route and the
//! daily job's work then holds the record against `template.yaml`: an action
//! a function performs that its policy does not grant fails (AWS would
//! answer AccessDenied), and so does one its policy grants that it never
//! performs, unless a reason is given below.

use std::collections::{BTreeMap, BTreeSet};

use lambda_http::http::Method;
use quota_shared::api::Function;
use quota_tests::{ADMIN, APP, Fault, Rule, TestApp, Value, json};
use serde_norway::Value as Yaml;

/// Granted and never performed in the tour, with the reason it stays.
const KEPT: &[(&str, &str, &str, &str)] = &[
    (
        "deliver-channels",
        "sqs:ReceiveMessage",
        "channel-queue",
        "Lambda's event source mapping polls the queue with the function's role",
    ),
    (
        "deliver-channels",
        "sqs:DeleteMessage",
        "channel-queue",
        "Lambda's event source mapping deletes a handled message with the function's role",
    ),
    (
        "deliver-channels",
        "sqs:GetQueueAttributes",
        "channel-queue",
        "Lambda's event source mapping reads the queue's attributes with the function's role",
    ),
    (
        "usage-job",
        "sqs:SendMessage",
        "dlq",
        "Lambda sends a run that failed every retry to the dead-letter queue with the function's role",
    ),
    (
        "increment-usage",
        "ses:SendEmail",
        "ses-configuration-set",
        "SES checks a send against the identity's default configuration set, when it has one",
    ),
    (
        "usage-job",
        "ses:SendEmail",
        "ses-configuration-set",
        "SES checks a send against the identity's default configuration set, when it has one",
    ),
];

/// What a policy statement's resource names, in the terms the proxy
/// records them.
fn resource_kind(resource: &Yaml) -> String {
    let text = match resource {
        Yaml::Tagged(t) => format!("{} {}", t.tag, serde_norway::to_string(&t.value).unwrap_or_default()),
        other => serde_norway::to_string(other).unwrap_or_default(),
    };
    if text.contains("/index/job") {
        "index/job".into()
    } else if text.contains("QuotaTable") {
        "table".into()
    } else if text.contains("QuotaEventBus") {
        "bus".into()
    } else if text.contains(":configuration-set/") {
        "ses-configuration-set".into()
    } else if text.contains(":identity/") {
        "ses".into()
    } else if text.contains("ChannelDeadLetterQueue") {
        "channel-dlq".into()
    } else if text.contains("ChannelQueue") {
        "channel-queue".into()
    } else if text.contains("DeadLetterQueue") {
        "dlq".into()
    } else {
        panic!("a resource this test does not know: {text}")
    }
}

/// Each function's grants: (action, resource kind) → the `events:source`
/// values allowed, if the statement is conditioned on them.
/// A function's grants: (action, resource kind) → the allowed sources.
type Grants = BTreeMap<(String, String), Option<BTreeSet<String>>>;

fn policies() -> BTreeMap<String, Grants> {
    let template = quota_tests::aws::template();
    let mut out = BTreeMap::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
        let mut grants = BTreeMap::new();
        for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let one_or_many = |v: &Yaml| match v {
                    Yaml::Sequence(items) => items.clone(),
                    other => vec![other.clone()],
                };
                let sources = statement["Condition"]["StringEquals"]["events:source"].clone();
                let sources = (!sources.is_null())
                    .then(|| one_or_many(&sources).iter().map(|s| s.as_str().unwrap().to_string()).collect());
                for action in one_or_many(&statement["Action"]) {
                    for res in one_or_many(&statement["Resource"]) {
                        grants.insert((action.as_str().unwrap().to_string(), resource_kind(&res)), sources.clone());
                    }
                }
            }
        }
        out.insert(binary, grants);
    }
    out
}

async fn must(app: &TestApp, reply: quota_tests::Reply, want: u16, what: &str) -> Value {
    assert_eq!(reply.status, want, "{what}: {}", reply.body);
    let _ = app;
    reply.body
}

/// Every route and the daily job's work, once each way it calls AWS.
async fn tour(app: &TestApp) {
    let key = |k: &'static str| [("idempotency-key", k)];
    // manage-orgs: create (with a key), update with a plan change (its
    // event through the outbox), read.
    let create = json!({ "plan": "free", "contacts": app.contacts("tour") }).to_string();
    let r = app.send(Method::PUT, "/v1/orgs/tour", Some(&create), &key("org-1"), &ADMIN).await;
    must(app, r, 201, "create").await;
    must(app, app.get("/v1/orgs/tour", &APP).await, 200, "get org").await;
    app.org("other", json!({ "plan": "growth", "contacts": app.contacts("other") })).await;
    // A plan change: its PlanChanged through the outbox.
    app.org("other", json!({ "plan": "basic" })).await;

    // check-quota, on a counter written and one not written yet.
    must(app, app.get("/v1/orgs/tour/usage/conversations/check?amount=2", &APP).await, 200, "check").await;
    let many = json!({ "resources": { "contacts": 3, "users": 1 } });
    must(app, app.post("/v1/orgs/tour/check", many, &APP).await, 200, "check many").await;

    // increment-usage: consumes (the 80 % email and its events), keyed,
    // release, set, reservations.
    must(app, app.consume("tour", "conversations", 85).await, 200, "consume").await;
    must(app, app.consume_with_key("tour", "conversations", 1, "c-1").await, 200, "keyed consume").await;
    must(app, app.consume("tour", "contacts", 5).await, 200, "consume contacts").await;
    must(app, app.release("tour", "contacts", 2).await, 200, "release").await;
    let set = app.put("/v1/orgs/tour/usage/contacts", json!({ "value": 4 }), &APP).await;
    must(app, set, 200, "set").await;
    let id = app.reserved("tour", "contacts", 3).await;
    must(app, app.commit("tour", &id, Some(2)).await, 200, "commit").await;
    let reserve = json!({ "amount": 2, "ttlSeconds": 60 }).to_string();
    let path = "/v1/orgs/tour/usage/contacts/reserve";
    let r = app.send(Method::POST, path, Some(&reserve), &key("r-1"), &APP).await;
    let held = must(app, r, 201, "keyed reserve").await;
    must(app, app.cancel("tour", held["reservationId"].as_str().unwrap()).await, 200, "release a reservation").await;
    let expiring = app.reserved("tour", "contacts", 1).await;
    let _ = expiring;

    // admin-reset: grants (one that expires), revoke, reset, audit, list.
    let grant = json!({ "resource": "contacts", "amount": 5, "reason": "tour" }).to_string();
    let r = app.send(Method::POST, "/v1/admin/orgs/tour/grants", Some(&grant), &key("g-1"), &ADMIN).await;
    let g = must(app, r, 201, "grant").await;
    let r = app.send(Method::POST, "/v1/admin/orgs/tour/grants", Some(&grant), &key("g-1"), &ADMIN).await;
    must(app, r, 201, "grant replay").await;
    must(app, app.revoke("tour", g["grant"]["id"].as_str().unwrap()).await, 200, "revoke").await;
    must(app, app.revoke("tour", g["grant"]["id"].as_str().unwrap()).await, 200, "revoke again").await;
    let soon = json!({ "resource": "contacts", "amount": 5, "reason": "short", "expiresAt": "2026-03-02T10:00:00Z" });
    must(app, app.grant("tour", soon).await, 201, "short grant").await;
    let reset = json!({ "resource": "conversations", "reason": "tour" }).to_string();
    let r = app.send(Method::POST, "/v1/admin/orgs/tour/reset", Some(&reset), &key("x-1"), &ADMIN).await;
    must(app, r, 200, "reset").await;
    must(app, app.get("/v1/admin/orgs/tour/audit", &ADMIN).await, 200, "audit").await;
    must(app, app.get("/v1/admin/orgs?limit=10", &ADMIN).await, 200, "list orgs").await;

    // manage-channels: add (keyed, then its replay), list, deliveries, remove.
    let hook = json!({ "type": "webhook", "url": app_receiver_url(), "events": ["QuotaThresholdCrossed"] }).to_string();
    let r = app.send(Method::POST, "/v1/orgs/tour/channels", Some(&hook), &key("ch-1"), &ADMIN).await;
    let channel = must(app, r, 201, "add a channel").await;
    let r = app.send(Method::POST, "/v1/orgs/tour/channels", Some(&hook), &key("ch-1"), &ADMIN).await;
    must(app, r, 201, "add a channel again").await;
    let slack = json!({ "type": "slack", "url": app_receiver_url(), "events": ["QuotaThresholdCrossed"] });
    let other = must(app, app.post("/v1/orgs/tour/channels", slack, &ADMIN).await, 201, "a second channel").await;
    must(app, app.get("/v1/orgs/tour/channels", &ADMIN).await, 200, "list channels").await;
    let id = channel["id"].as_str().unwrap();
    must(app, app.get(&format!("/v1/orgs/tour/channels/{id}/deliveries"), &ADMIN).await, 200, "deliveries").await;
    let other_path = format!("/v1/orgs/tour/channels/{}", other["id"].as_str().unwrap());
    must(app, app.send(Method::DELETE, &other_path, None, &[], &ADMIN).await, 200, "remove a channel").await;

    // deliver-channels: the rule's message for "tour" fanned out, then its
    // delivery failed (hidden for its backoff) until its last attempt
    // dead-lettered it.
    deliver(app).await;

    // get-usage.
    for path in [
        "/v1/health",
        "/v1/plans",
        "/v1/orgs/tour/usage",
        "/v1/orgs/tour/usage/contacts/history?days=7",
        "/v1/orgs/tour/features",
        "/v1/orgs/tour/features/sso",
    ] {
        must(app, app.get(path, &APP).await, 200, path).await;
    }

    // An hour on: the hold and the grant have expired; a consume takes them
    // off (and publishes GrantExpired).
    app.set_now("2026-03-02T11:00:00Z");
    must(app, app.consume("tour", "contacts", 1).await, 200, "consume past expiries").await;
    // A plan change whose answer was lost leaves its event in the outbox
    // for the job to publish.
    app.faults().dynamodb.inject(Rule::on("TransactWriteItems", Fault::LoseResponse));
    let lost = app.put("/v1/orgs/tour", json!({ "plan": "basic" }), &ADMIN).await;
    assert_eq!(lost.code(), Some("OUTCOME_UNKNOWN"), "{}", lost.body);
    app.faults().dynamodb.clear();
    // A counter not written yet (a resource the catalogue gained after the
    // org was created): a consume writes it from the profile first.
    let store = &app.direct.store;
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("ORG#tour".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("STATE#USAGE#tasks".into()))
        .send()
        .await
        .expect("forget a counter");
    must(app, app.consume("tour", "tasks", 1).await, 200, "consume on an unwritten counter").await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::InternalError).times(1));
    must(app, app.consume("other", "conversations", 90).await, 200, "consume with SES down").await;
    app.faults().aws.clear();

    // usage-job: a new period (rollover, UsagePeriodClosed), the trial's
    // end (its email), owed emails, the outbox, snapshots; over HTTP, then
    // a run handed over part by part.
    app.set_now("2026-04-01T00:15:00Z");
    must(app, app.post("/v1/admin/jobs/daily", json!({}), &ADMIN).await, 200, "job over HTTP").await;
    app.set_now("2026-04-02T00:15:00Z");
    let spent = usage_job::Options { deadline: Some(std::time::Instant::now()), page_size: 1, ..Default::default() };
    let first = usage_job::run_with(&app.deps, app.now(), spent).await;
    assert!(first.run.continued, "{first:?}");
    while let Some(part) = usage_job::resume(&app.deps, &first.run.id, None, spent).await.unwrap() {
        if !part.run.continued {
            break;
        }
    }
}

/// The webhook receiver the tour's channels point at (it answers 500, always).
fn app_receiver_url() -> String {
    RECEIVER.get().expect("started before the tour").url("/tour")
}

static RECEIVER: std::sync::OnceLock<quota_tests::receiver::Receiver> = std::sync::OnceLock::new();

async fn deliver(app: &TestApp) {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    let (signed, deps) = app.signed_as("deliver-channels").await;
    let proxied = deliver_channels::sqs_config(&signed).endpoint_url(app.faults().aws.url()).build();
    // The queue is the stack's, made by CloudFormation: not the function's doing.
    let aws = quota_tests::aws_config().await;
    let moto = std::env::var("MOTO_URL").expect("MOTO_URL");
    let unsigned = aws_sdk_sqs::Client::from_conf(deliver_channels::sqs_config(&aws).endpoint_url(moto).build());
    let queue = unsigned.create_queue().queue_name("tour-channels").send().await.unwrap();
    let url = queue.queue_url().unwrap().to_string();
    let dead = unsigned.create_queue().queue_name("tour-channels-dead").send().await.unwrap();
    let queues =
        deliver_channels::Queues { queue_url: url.clone(), dead_letters_url: dead.queue_url().unwrap().into() };
    let sqs = aws_sdk_sqs::Client::from_conf(proxied);
    let deliverer = deliver_channels::Deliverer::new(&deps, sqs, queues, quota_tests::DASHBOARD);
    let mut batch: SqsEvent = serde_json::from_str(include_str!("../../events/sqs-channel-event.json")).unwrap();
    let mut body: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    body["detail"]["orgId"] = json!("tour");
    batch.records[0].body = Some(body.to_string());
    assert!(deliverer.handle(batch).await.batch_item_failures.is_empty());
    let got = unsigned.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let message = got.messages().first().expect("a delivery queued").clone();
    // Failed (the receiver answers 500) until the last attempt, which dead-letters it.
    let max = quota_shared::domain::webhook::MAX_ATTEMPTS;
    for attempt in 1..=max {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id().map(str::to_string);
        record.receipt_handle = message.receipt_handle().map(str::to_string);
        record.body = message.body().map(str::to_string);
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let failures = deliverer.handle(event).await.batch_item_failures.len();
        assert_eq!(failures, usize::from(attempt < max), "attempt {attempt}");
    }
}

#[test]
fn each_function_performs_exactly_what_its_policy_grants() {
    // The tour polls every handler's future in one task: debug builds need
    // more stack than a test thread has.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(32 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        tokio::spawn(async {
            let receiver = quota_tests::receiver::Receiver::answering(&[500]).await;
            assert!(RECEIVER.set(receiver).is_ok());
            let app = TestApp::attributed("2026-03-02T09:00:00Z").await;
            Box::pin(tour(&app)).await;
            check(&app);
        })
        .await
        .expect("the tour");
    });
}

fn check(app: &TestApp) {
    let mut calls = app.faults().dynamodb.calls();
    calls.extend(app.faults().aws.calls());
    // Every function: those that serve routes, and the one that serves the channel queue.
    let names: Vec<&str> = Function::ALL.iter().map(|f| f.name()).chain(["deliver-channels"]).collect();
    let by_key: BTreeMap<String, &str> = names.iter().map(|n| (quota_tests::access_key_of(n), *n)).collect();
    let mut performed: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut sources: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for call in &calls {
        let function = by_key.get(&call.access_key).unwrap_or_else(|| panic!("a call no function signed: {call:?}"));
        performed.entry(function).or_default().insert((call.action.clone(), call.resource.clone()));
        if let Some(source) = &call.source {
            sources.entry(function).or_default().insert(source.clone());
        }
    }
    let policies = policies();
    let mut problems = Vec::new();
    for name in names.iter().copied() {
        let grants = &policies[name];
        let done = performed.get(name).cloned().unwrap_or_default();
        // SES also checks the recipients' identities in its sandbox and the
        // From address's (the same resource kind): `ses` stands for both.
        for (action, resource) in &done {
            // DynamoDB authorizes a transaction's items each by its own
            // action; the transaction itself needs no grant.
            if action == "dynamodb:TransactWriteItems" {
                continue;
            }
            match grants.get(&(action.clone(), resource.clone())) {
                None => {
                    problems.push(format!("{name} performs {action} on {resource}, which its policy does not grant"))
                }
                Some(Some(allowed)) => {
                    for source in sources.get(name).into_iter().flatten() {
                        if !allowed.contains(source) {
                            problems.push(format!("{name} publishes source {source}, which its policy does not allow"));
                        }
                    }
                }
                Some(None) => {}
            }
        }
        for (action, resource) in grants.keys() {
            let used = done.contains(&(action.clone(), resource.clone()));
            let kept = KEPT.iter().any(|(f, a, r, _)| *f == name && a == action && r == resource);
            if !used && !kept {
                problems.push(format!("{name}'s policy grants {action} on {resource}, which it never performs"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(performed.len() == names.len(), "every function was toured: {:?}", performed.keys());
}
