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
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery::{self, DeliveryError};
use quota_shared::domain::events::{ClosedResource, UsagePeriodClosed};
use quota_shared::domain::org::OrgId;
use quota_shared::domain::org::OrgState;
use quota_shared::domain::period::ClosedPeriod;
use quota_shared::store::job::{ScanCursor, ScannedOrg};
use quota_shared::store::notices::NoticeHolder;
use quota_shared::store::{Settled, StoreError};
use quota_shared::{ApiError, Deps};
use serde::Serialize;

/// Parallel scan segments.
pub const SEGMENTS: i32 = 4;
/// Orgs processed at once within one segment.
pub const ORG_CONCURRENCY: usize = 8;
/// Failed org ids listed in the summary (the count is always complete).
const LISTED_FAILURES: usize = 20;
/// What one notice may take in the job: claim, publish and send.
const NOTICE_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Scan segments that failed part way: the orgs behind them were not
    /// seen this run.
    pub segments_failed: usize,
    /// Notices and events whose sender vanished after it began the call
    /// (SES, EventBridge): counted as delivered rather than sent twice. Each
    /// is logged with its org.
    pub presumed_delivered: usize,
}

impl Summary {
    /// Whether every org was seen and processed.
    pub fn complete(&self) -> bool {
        self.failures == 0 && self.segments_failed == 0
    }
}

/// A scheduled run that did not finish its work: reported to Lambda as the
/// invocation's error, so EventBridge retries the run (every step is
/// guarded, so a retry repeats nothing that was done).
#[derive(Debug, thiserror::Error)]
#[error("daily job incomplete: {} org(s) failed, {} scan segment(s) failed", .0.failures, .0.segments_failed)]
pub struct Incomplete(pub Summary);

#[derive(Debug, Default)]
struct OrgOutcome {
    presumed: usize,
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
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Publish(#[from] quota_shared::bus::PublishError),
}

/// Runs the job over every org. A failed scan segment stops only itself;
/// the summary says what was done and what failed, and is always logged.
pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Summary {
    let summary = Mutex::new(Summary::default());
    let segments = (0..SEGMENTS).map(|segment| scan_segment(deps, segment, now, &summary));
    let failed: Vec<StoreError> =
        futures::future::join_all(segments).await.into_iter().filter_map(Result::err).collect();
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.segments_failed = failed.len();
    for err in &failed {
        tracing::error!(error = %err, "daily job: a scan segment failed");
    }
    if summary.complete() {
        tracing::info!(?summary, "daily job done");
    } else {
        tracing::error!(?summary, "daily job done, incomplete");
    }
    summary
}

async fn scan_segment(
    deps: &Deps,
    segment: i32,
    now: DateTime<Utc>,
    summary: &Mutex<Summary>,
) -> Result<(), StoreError> {
    let mut cursor = ScanCursor::default();
    loop {
        let page = deps.store.scan_orgs(segment, SEGMENTS, cursor).await?;
        futures::stream::iter(page.orgs)
            .for_each_concurrent(ORG_CONCURRENCY, |scanned| async move {
                let outcome = process_org(deps, &scanned, now).await;
                let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(Some(o)) => {
                        s.orgs_seen += 1;
                        s.emails_sent += o.emails;
                        s.periods_closed += o.periods_closed;
                        s.trials_expired += usize::from(o.trial_expired);
                        s.snapshots += o.snapshots;
                        s.presumed_delivered += o.presumed;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(org = %scanned.org, error = %err, "daily job failed for org");
                        s.orgs_seen += 1;
                        s.failures += 1;
                        if s.failed_orgs.len() < LISTED_FAILURES {
                            s.failed_orgs.push(scanned.org.to_string());
                        }
                    }
                }
            })
            .await;
        match page.next {
            Some(next) => cursor = next,
            None => return Ok(()),
        }
    }
}

/// One org's daily work. `None` when the org has no profile.
async fn process_org(deps: &Deps, scanned: &ScannedOrg, now: DateTime<Utc>) -> Result<Option<OrgOutcome>, JobError> {
    let Some(state) = &scanned.state else {
        return Ok(None);
    };
    let profile = &state.profile;
    let org = &profile.org_id;
    let mut outcome = OrgOutcome { presumed: settle_lapsed(deps, state).await?, ..Default::default() };
    let mut errors = Vec::new();

    // 1. Threshold emails still owed, on the counters as stored: a period
    //    that has just ended still owes its own (the claim is pinned to it).
    for counter in state.counters.values() {
        match delivery::deliver_threshold(deps, profile, counter, now, NOTICE_BUDGET, 3).await {
            Ok(sent) => outcome.emails += usize::from(sent),
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 2. Close ended periods (a notice still owed moves to the period's
    //    record), then finish what closed periods still owe: the notice,
    //    and the `UsagePeriodClosed` event. The scan may be stale, so
    //    closed periods are re-read consistently whenever there are any.
    let mut rolled = false;
    for counter in state.counters.values() {
        if counter.period_ended(now) {
            deps.store.roll_over(org, counter, now).await?;
            rolled = true;
        }
    }
    if rolled || !scanned.closed.is_empty() {
        let mut closed = deps.store.pending_closed(org).await?;
        // Lapsed claims on closed records, from this consistent read (a
        // rollover after the scan may have moved one there).
        let settled = settle_closed(deps, org, &closed).await?;
        if settled > 0 {
            outcome.presumed += settled;
            closed = deps.store.pending_closed(org).await?;
        }
        for record in closed.iter().filter(|c| c.owed) {
            match delivery::deliver_closed_threshold(deps, profile, record, now, NOTICE_BUDGET).await {
                Ok(sent) => outcome.emails += usize::from(sent),
                Err(err) => errors.push(JobError::from(err)),
            }
        }
        let unemitted: Vec<ClosedPeriod> = closed.into_iter().filter(|c| !c.emitted).collect();
        outcome.periods_closed = emit_closed(deps, org, &profile.plan, unemitted, now).await?;
    }

    // 3. Trial expiry: one email, one event.
    let trial_over = profile.active_trial(deps.catalogue).is_some_and(|end| end <= now);
    if trial_over && state.trial_notified_at.is_none() {
        match delivery::deliver_trial_ended(deps, profile, now, NOTICE_BUDGET).await {
            Ok(true) => {
                outcome.trial_expired = true;
                outcome.emails += usize::from(!profile.contacts.recipients().is_empty());
            }
            Ok(false) => {}
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 4. Today's snapshot, of the counters as they stand now.
    let counters = state.counters_at(deps.catalogue, now);
    outcome.snapshots = deps.store.put_snapshots(org, &counters, now.date_naive(), now).await?;

    match errors.into_iter().next() {
        Some(err) => Err(err),
        None => Ok(Some(outcome)),
    }
}

/// 0. Claims whose sender vanished (the lease lapsed): presumed delivered if
///    the sender had begun its call, released (sent again below) if not.
///    Returns how many were presumed delivered. Lapse is judged by a fresh
///    reading of the clock, not the run's start.
async fn settle_lapsed(deps: &Deps, state: &OrgState) -> Result<usize, JobError> {
    let org = &state.profile.org_id;
    let now = deps.clock.now();
    let mut settled = Vec::new();
    for counter in state.counters.values() {
        if let Some(claim) = counter.notice.filter(|c| c.lapsed(now.timestamp())) {
            let holder = NoticeHolder::Counter(counter.period);
            let outcome = deps.store.settle_threshold(org, &counter.resource, holder, claim, now).await?;
            settled.push((outcome, "threshold notice", counter.resource.clone()));
        }
    }
    if let Some(claim) = state.trial_notice.filter(|c| c.lapsed(now.timestamp())) {
        let outcome = deps.store.settle_trial_notice(org, claim, now).await?;
        settled.push((outcome, "trial notice", String::new()));
    }
    Ok(count_presumed(org, settled))
}

/// Lapsed claims on closed records: threshold notices and period closes.
async fn settle_closed(deps: &Deps, org: &OrgId, closed: &[ClosedPeriod]) -> Result<usize, JobError> {
    let now = deps.clock.now();
    let mut settled = Vec::new();
    for record in closed {
        if let Some(claim) = record.notice.filter(|c| c.lapsed(now.timestamp())) {
            let holder = NoticeHolder::Closed(record.period);
            let outcome = deps.store.settle_threshold(org, &record.resource, holder, claim, now).await?;
            settled.push((outcome, "closed-period notice", record.resource.clone()));
        }
        if let Some(claim) = record.emit.filter(|c| c.lapsed(now.timestamp())) {
            let outcome = deps.store.settle_closed_event(org, record, claim, now).await?;
            settled.push((outcome, "UsagePeriodClosed", record.resource.clone()));
        }
    }
    Ok(count_presumed(org, settled))
}

fn count_presumed(org: &OrgId, settled: Vec<(Settled, &str, String)>) -> usize {
    let mut presumed = 0;
    for (outcome, what, resource) in settled {
        match outcome {
            Settled::PresumedDelivered => {
                presumed += 1;
                tracing::warn!(org = %org, what, resource, "sender vanished mid-call: presumed delivered");
            }
            Settled::Released => {
                tracing::info!(org = %org, what, resource, "sender vanished before its call: sent again")
            }
            Settled::Nothing => {}
        }
    }
    presumed
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
    closed
        .sort_by(|a, b| (a.period.start, a.period.end, &a.resource).cmp(&(b.period.start, b.period.end, &b.resource)));
    let mut emitted = 0;
    for group in closed.chunk_by(|a, b| a.period == b.period) {
        let Some(lease) = deps.store.claim_closed(org, group, deps.clock.now()).await? else {
            continue;
        };
        let resources = group
            .iter()
            .map(|c| ClosedResource {
                resource: c.resource.clone(),
                used: c.used,
                limit: c.limit,
                overage: c.overage,
                enforcement: c.enforcement,
                plan: c.plan.clone(),
            })
            .collect();
        let period = group[0].period;
        let event = UsagePeriodClosed {
            org_id: org.clone(),
            plan: plan.to_string(),
            period_id: UsagePeriodClosed::period_id(org, period),
            period,
            resources,
            at: now,
        };
        if !deps.store.closed_sending(org, group, lease).await? {
            continue;
        }
        // A publish that certainly failed releases the claim: the next run
        // emits it. One whose outcome is unknown (a timeout) leaves it to
        // lapse as delivered: never a second billing event.
        if let Err(err) = deps.events.publish(&event).await {
            if !err.outcome_unknown {
                deps.store.finish_closed(org, group, lease, false, now).await?;
            }
            return Err(err.into());
        }
        deps.store.finish_closed(org, group, lease, true, now).await?;
        emitted += 1;
    }
    Ok(emitted)
}

/// `POST /v1/admin/jobs/daily`: runs the job now and answers its summary.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::UsageJob) {
        // Failed orgs are part of the report; a failed scan segment means
        // orgs went unseen, which the admin hears as 503 (the log has the rest).
        Ok(call) if call.route.endpoint == Endpoint::DailyJob => match run(deps, deps.clock.now()).await {
            summary if summary.segments_failed == 0 => Ok(api::ok(&summary)),
            _ => Err(ApiError::StoreUnavailable),
        },
        Ok(_) => Err(ApiError::NotFound),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The Lambda's event: an API Gateway v2 request (the admin route), which
/// gets an API Gateway response, or the scheduled event, which gets the
/// summary, or [`Incomplete`] as the invocation's error.
pub async fn handle_event(deps: &Deps, event: serde_json::Value) -> Result<serde_json::Value, Incomplete> {
    if event.get("requestContext").is_some() {
        let response = match lambda_http::request::from_str(&event.to_string()) {
            Ok(req) => handle(deps, req).await,
            Err(_) => ApiError::InvalidRequest("unreadable request".into()).into_response(),
        };
        return Ok(gateway_response(response));
    }
    let summary = run(deps, deps.clock.now()).await;
    if summary.complete() { Ok(serde_json::to_value(summary).unwrap_or_default()) } else { Err(Incomplete(summary)) }
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
