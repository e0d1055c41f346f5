//! What SES v2 answers, injected with its own error bodies through the
//! proxy (`x-amzn-ErrorType`, status, message), and what comes of each:
//!
//! - `MessageRejected` (in the sandbox: a recipient not verified) and
//!   `BadRequestException` can never succeed: the notice is done, unsent,
//!   logged and counted in the job's summary (`emailsRejected`), and it is
//!   not tried again every day;
//! - `TooManyRequestsException` certainly sent nothing: the job retries it,
//!   jittered, within its budget; the consume path leaves it to the job;
//! - `AccessDeniedException` (a policy that does not allow the send) keeps
//!   the notice owed and fails the org, so the job's alarm fires, until the
//!   policy is fixed;
//!
//! and in every case the org's snapshot is written.

use quota_tests::{Fault, Rule, TestApp, json};

const REJECTED: Fault = Fault::SesError(
    400,
    "MessageRejected",
    "Email address is not verified. The following identities failed the check in region EU-WEST-1: owner@x.test",
);
const BAD_REQUEST: Fault = Fault::SesError(400, "BadRequestException", "Illegal address");
const THROTTLED: Fault = Fault::SesError(429, "TooManyRequestsException", "Maximum sending rate exceeded.");
const DENIED: Fault = Fault::SesError(
    403,
    "AccessDeniedException",
    "User is not authorized to perform `ses:SendEmail' on resource `arn:aws:ses:eu-west-1:123456789012:identity/x.test'",
);

/// An org whose 80 % email is owed (its send failed at the consume), a day
/// before the job runs.
async fn owing(app: &TestApp, base: &str) -> String {
    let org = app.unique(base);
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    app.faults().aws.inject(Rule::on("outbound-emails", Fault::InternalError).times(1));
    assert_eq!(app.consume(&org, "conversations", 85).await.status, 200);
    assert!(app.emails(&org).await.is_empty());
    app.faults().aws.clear();
    app.set_now("2026-03-03T00:15:00Z");
    org
}

async fn snapshot_written(app: &TestApp, org: &str) -> bool {
    let id = quota_shared::domain::org::OrgId::parse(org).unwrap();
    let today = app.now().date_naive();
    !app.deps.store.history(&id, "conversations", today, today).await.unwrap().is_empty()
}

#[tokio::test]
async fn a_message_ses_rejects_for_good_is_not_sent_again_and_is_counted() {
    for (fault, base) in [(REJECTED, "ses-rejected"), (BAD_REQUEST, "ses-bad")] {
        let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
        let org = owing(&app, base).await;
        app.faults().aws.inject(Rule::on("outbound-emails", fault));
        let summary = usage_job::run(&app.deps, app.now()).await;
        assert_eq!((summary.emails_rejected, summary.emails_sent, summary.failures), (1, 0, 0), "{base}: {summary:?}");
        assert!(snapshot_written(&app, &org).await, "{base}");
        app.faults().aws.clear();
        // Not tried again: the notice is done.
        app.set_now("2026-03-04T00:15:00Z");
        let next = usage_job::run(&app.deps, app.now()).await;
        assert_eq!((next.emails_sent, next.emails_rejected), (0, 0), "{base}: {next:?}");
        assert!(app.emails(&org).await.is_empty(), "{base}");
        assert_eq!(app.usage(&org).await.body["notificationsSent"]["conversations"], json!([80]), "{base}");
    }
}

#[tokio::test]
async fn throttling_is_retried_by_the_job_and_left_to_it_by_a_consume() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = app.unique("ses-throttled");
    app.org(&org, json!({ "plan": "basic", "contacts": app.contacts(&org) })).await;
    // The consume path does not wait on SES's rate: the notice stays owed.
    app.faults().aws.inject(Rule::on("outbound-emails", THROTTLED).times(1));
    assert_eq!(app.consume(&org, "conversations", 85).await.status, 200);
    assert!(app.emails(&org).await.is_empty());
    assert_eq!(app.faults().aws.injected()["TooManyRequestsException"], 1);
    // The job retries the throttled send until SES takes it.
    app.set_now("2026-03-03T00:15:00Z");
    app.faults().aws.inject(Rule::on("outbound-emails", THROTTLED).times(2));
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.emails_sent, summary.failures), (1, 0), "{summary:?}");
    assert_eq!(app.faults().aws.injected()["TooManyRequestsException"], 3);
    assert_eq!(app.emails(&org).await.len(), 1);
}

#[tokio::test]
async fn a_denied_send_stays_owed_fails_its_org_and_keeps_its_snapshot() {
    let app = TestApp::with_faults("2026-03-02T09:00:00Z").await;
    let org = owing(&app, "ses-denied").await;
    app.faults().aws.inject(Rule::on("outbound-emails", DENIED));
    let summary = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((summary.failures, summary.emails_rejected), (1, 0), "{summary:?}");
    assert_eq!(summary.failed_orgs, std::slice::from_ref(&org));
    assert!(snapshot_written(&app, &org).await);
    app.faults().aws.clear();
    let next = usage_job::run(&app.deps, app.now()).await;
    assert_eq!((next.emails_sent, next.failures), (1, 0), "sent once the policy allows it: {next:?}");
    assert_eq!(app.emails(&org).await.len(), 1);
}

/// What SES would refuse is refused when the org is saved: more recipients
/// than one message takes, an address that is not 7-bit ASCII.
#[tokio::test]
async fn contacts_ses_would_refuse_are_refused_when_the_org_is_saved() {
    let app = TestApp::new("2026-03-02T09:00:00Z").await;
    let admins: Vec<String> = (0..49).map(|i| format!("admin{i}@x.test")).collect();
    for (contacts, field) in [
        (json!({ "owner": "o@x.test", "billing": "b@x.test", "admins": admins }), "contacts.admins"),
        (json!({ "owner": "jørgen@x.test" }), "contacts.owner"),
        (json!({ "billing": "b@æblegrød.dk" }), "contacts.billing"),
    ] {
        let r = app
            .put("/v1/orgs/ses-contacts", json!({ "plan": "basic", "contacts": contacts }), &quota_tests::ADMIN)
            .await;
        assert_eq!((r.status, r.code()), (400, Some("INVALID_REQUEST")), "{}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(field), "{}", r.body);
    }
    let fits: Vec<String> = (0..48).map(|i| format!("admin{i}@x.test")).collect();
    let ok = json!({ "plan": "basic", "contacts": { "owner": "o@x.test", "billing": "b@xn--blegrd-ixa5o.dk", "admins": fits } });
    assert_eq!(app.put("/v1/orgs/ses-contacts", ok, &quota_tests::ADMIN).await.status, 201);
}
