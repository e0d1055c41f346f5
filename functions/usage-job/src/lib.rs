//! `usage-job`: the daily job. For every org it
//!
//! 1. sends any threshold email still owed (a send that failed earlier),
//!    including one owed by a period that has just ended;
//! 2. closes periods that ended (the rollover a consume would have done) and
//!    emits one `UsagePeriodClosed` per org and period, exactly once;
//! 3. sends the trial-ended email to free orgs whose trial is over (once),
//!    and publishes `TrialExpired`;
//! 4. records the day's usage snapshot per resource.
//!
//! It walks the table with a parallel scan (`SEGMENTS` segments, paginated),
//! works on `ORG_CONCURRENCY` orgs at a time per segment, and one org's
//! failure does not stop the others. Every step is guarded by a conditional
//! write, so a second run, or a retried one, repeats nothing.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use quota_shared::domain::org::OrgId;
use quota_shared::domain::rfc3339;
use quota_shared::events::EventKind;
use quota_shared::http::{self, Call, Endpoint, Function};
use quota_shared::notify::{self, NotifyError};
use quota_shared::store::items::{Item, get_s};
use quota_shared::store::job::{ClosedPeriod, is_closed};
use quota_shared::store::{OrgState, StoreError, all_counters};
use quota_shared::{ApiError, Deps};
use serde::Serialize;

/// Parallel scan segments.
pub const SEGMENTS: i32 = 4;
/// Orgs processed at once within one segment.
pub const ORG_CONCURRENCY: usize = 8;
/// Failed org ids listed in the summary (the count is always complete).
const LISTED_FAILURES: usize = 20;

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub orgs_seen: usize,
    pub emails_sent: usize,
    pub periods_closed: usize,
    pub trials_expired: usize,
    pub snapshots: usize,
    pub failures: usize,
    pub failed_orgs: Vec<String>,
}

#[derive(Debug, Default)]
struct OrgOutcome {
    emails: usize,
    periods_closed: usize,
    trial_expired: bool,
    snapshots: usize,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Publish(#[from] quota_shared::events::PublishError),
}

/// Runs the job over every org.
pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Result<Summary, StoreError> {
    let summary = Mutex::new(Summary::default());
    let segments = (0..SEGMENTS).map(|segment| scan_segment(deps, segment, now, &summary));
    for result in futures::future::join_all(segments).await {
        result?;
    }
    let summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    tracing::info!(?summary, "daily job done");
    Ok(summary)
}

async fn scan_segment(
    deps: &Deps,
    segment: i32,
    now: DateTime<Utc>,
    summary: &Mutex<Summary>,
) -> Result<(), StoreError> {
    let mut start = None;
    let mut pending: Vec<Item> = Vec::new();
    loop {
        let page = deps.store.scan_page(segment, SEGMENTS, start).await?;
        // An org's items are contiguous in a segment; one that runs past the
        // page's end waits for the next page.
        let mut orgs: Vec<Vec<Item>> = Vec::new();
        for item in page.items {
            if pending.first().is_some_and(|first| get_s(first, "pk") != get_s(&item, "pk")) {
                orgs.push(std::mem::take(&mut pending));
            }
            pending.push(item);
        }
        if page.next.is_none() && !pending.is_empty() {
            orgs.push(std::mem::take(&mut pending));
        }
        futures::stream::iter(orgs)
            .for_each_concurrent(ORG_CONCURRENCY, |items| async move {
                let org = items.first().and_then(|i| get_s(i, "orgId")).unwrap_or("?").to_string();
                let outcome = process_org(deps, &items, now).await;
                let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(Some(o)) => {
                        s.orgs_seen += 1;
                        s.emails_sent += o.emails;
                        s.periods_closed += o.periods_closed;
                        s.trials_expired += usize::from(o.trial_expired);
                        s.snapshots += o.snapshots;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(org, error = %err, "daily job failed for org");
                        s.orgs_seen += 1;
                        s.failures += 1;
                        if s.failed_orgs.len() < LISTED_FAILURES {
                            s.failed_orgs.push(org);
                        }
                    }
                }
            })
            .await;
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(()),
        }
    }
}

/// One org's daily work. `None` when the items hold no org profile.
async fn process_org(deps: &Deps, items: &[Item], now: DateTime<Utc>) -> Result<Option<OrgOutcome>, JobError> {
    let Some(state) = OrgState::from_items(items.iter().filter(|i| !is_closed(i)))? else {
        return Ok(None);
    };
    let profile = &state.profile;
    let org = &profile.org_id;
    let mut outcome = OrgOutcome::default();
    let mut errors = Vec::new();

    // 1. Threshold emails still owed, on the counters as stored: a period
    //    that has just ended still owes its own (the claim is pinned to it).
    for counter in state.counters.values() {
        match notify::deliver_threshold(deps, profile, counter, now).await {
            Ok(sent) => outcome.emails += usize::from(sent),
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 2. Close ended periods, then emit what is closed and not yet emitted.
    //    The scan may be stale, so closed periods are re-read consistently
    //    whenever there are any, to emit each period whole.
    let mut rolled = false;
    for counter in state.counters.values() {
        if counter.period.is_some_and(|p| p.end <= now) {
            deps.store.roll_over(org, counter, now).await?;
            rolled = true;
        }
    }
    if rolled || items.iter().any(is_closed) {
        let closed = deps.store.unemitted_closed(org).await?;
        outcome.periods_closed = emit_closed(deps, org, &profile.plan, closed, now).await?;
    }

    // 3. Trial expiry: one email, one event.
    let trial_over = profile.active_trial(deps.catalogue).is_some_and(|end| end <= now);
    if trial_over && state.trial_notified_at.is_none() {
        match notify::deliver_trial_ended(deps, profile, now).await {
            Ok(true) => {
                outcome.trial_expired = true;
                outcome.emails += usize::from(!profile.contacts.recipients().is_empty());
                let detail = serde_json::json!({
                    "orgId": org,
                    "plan": profile.plan,
                    "trialEndedAt": profile.trial_ends_at.map(rfc3339),
                    "at": rfc3339(now),
                });
                deps.events.publish_or_log(EventKind::TrialExpired, &detail).await;
            }
            Ok(false) => {}
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 4. Today's snapshot, of the counters as they stand now.
    let counters = all_counters(&state, deps.catalogue, now);
    outcome.snapshots = deps.store.put_snapshots(org, &counters, now.date_naive(), now).await?;

    match errors.into_iter().next() {
        Some(err) => Err(err),
        None => Ok(Some(outcome)),
    }
}

/// Emits one `UsagePeriodClosed` per period (all its resources), each
/// claimed first so that concurrent or repeated runs emit it once.
async fn emit_closed(
    deps: &Deps,
    org: &OrgId,
    plan: &str,
    mut closed: Vec<ClosedPeriod>,
    now: DateTime<Utc>,
) -> Result<usize, JobError> {
    closed.sort_by(|a, b| (&a.start, &a.end, &a.resource).cmp(&(&b.start, &b.end, &b.resource)));
    let mut emitted = 0;
    for group in closed.chunk_by(|a, b| a.start == b.start && a.end == b.end) {
        if !deps.store.claim_closed(org, group, now).await? {
            continue;
        }
        let resources: Vec<serde_json::Value> = group
            .iter()
            .map(|c| {
                serde_json::json!({
                    "resource": c.resource,
                    "used": c.used,
                    "limit": c.limit,
                    "overage": c.overage,
                    "enforcement": c.enforcement,
                    "plan": c.plan,
                })
            })
            .collect();
        let detail = serde_json::json!({
            "orgId": org,
            "plan": plan,
            "periodId": format!("{org}/{}", group[0].start),
            "period": { "start": group[0].start, "end": group[0].end },
            "resources": resources,
            "at": rfc3339(now),
        });
        // A failed publish leaves the claim to lapse: the next run emits it.
        if let Err(err) = deps.events.publish(EventKind::UsagePeriodClosed, &detail).await {
            return Err(JobError::Publish(err));
        }
        deps.store.mark_closed_emitted(org, group, now).await?;
        emitted += 1;
    }
    Ok(emitted)
}

/// `POST /v1/admin/jobs/daily`: runs the job now and answers its summary.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::UsageJob) {
        Ok(call) if call.route.endpoint == Endpoint::DailyJob => match run(deps, deps.clock.now()).await {
            Ok(summary) => Ok(http::ok(&summary)),
            Err(err) => Err(ApiError::from(err)),
        },
        Ok(_) => Err(ApiError::NotFound),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The Lambda's event: an API Gateway v2 request (the admin route) or the
/// scheduled event. Answers an API Gateway response or the summary.
pub async fn handle_event(deps: &Deps, event: serde_json::Value) -> serde_json::Value {
    if event.get("requestContext").is_some() {
        let response = match lambda_http::request::from_str(&event.to_string()) {
            Ok(req) => handle(deps, req).await,
            Err(_) => ApiError::InvalidRequest("unreadable request".into()).into_response(),
        };
        return gateway_response(response);
    }
    match run(deps, deps.clock.now()).await {
        Ok(summary) => serde_json::to_value(summary).unwrap_or_default(),
        Err(err) => {
            tracing::error!(error = %err, "daily job could not scan the table");
            serde_json::json!({ "error": "STORE_UNAVAILABLE" })
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) response.
fn gateway_response(response: Response<Body>) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.into())))
        .collect();
    let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    serde_json::json!({
        "statusCode": response.status().as_u16(),
        "headers": headers,
        "body": body,
        "isBase64Encoded": false,
    })
}
