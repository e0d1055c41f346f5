//! `usage-job`: the daily job. For every org it
//!
//! 1. sends any threshold email still owed (a send that failed earlier),
//!    including one owed by a period that has just ended;
//! 2. closes periods that ended (the rollover a consume would have done) and
//!    emits one `UsagePeriodClosed` per org and period, exactly once;
//! 3. sends the trial-ended email to free orgs whose trial is over (once),
//!    and publishes `TrialExpired`;
//! 4. records the day's usage snapshot.
//!
//! It finds the orgs with a parallel scan of the table's sparse `job` index
//! (`SEGMENTS` segments, the next page read while the current one is
//! worked on), reads each org's state with one `Query`, works on
//! `ORG_CONCURRENCY` orgs at a time per segment, and writes the snapshots
//! 25 orgs to a request as they are done. One org's failure does not stop the others. Every
//! step is guarded by a conditional write, so a second run, or a retried
//! one, repeats nothing.
//!
//! A run has a time budget (Lambda's deadline less a margin, or 20 s when
//! started over HTTP). When it runs out, the run records where each segment
//! stands and hands over to another invocation with a `DailyJobContinued`
//! event, which resumes it there: a table of any size is finished, part by
//! part, and no org starves.

pub mod event;

mod bounds;
mod org;
mod run;
mod scan;
mod summary;

pub use bounds::{
    CUTOFF_MARGIN, DEADLINE_MARGIN, DELIVERY_MARGIN, HTTP_BUDGET, ORG_CONCURRENCY, Options, PAGE_SIZE, SEGMENTS,
    delivery_takes, http_worst_case,
};
pub use run::{resume, run, run_scheduled, run_with};
pub use summary::{Incomplete, RunPart, Summary};

use std::time::Duration;

use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Endpoint, Function};
use quota_shared::{ApiError, Deps};

use run::{first_part, run_part};

/// `POST /v1/admin/jobs/daily`: runs the job now, for at most
/// [`HTTP_BUDGET`], and answers its summary: 200 when the run finished,
/// 202 when it goes on in other invocations (`run.continued`).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    api::serve(&req, Function::UsageJob, |call| async move {
        match call.route.endpoint {
            Endpoint::DailyJob => Ok(run_over_http(deps, HTTP_ANSWER_BY).await),
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

/// When a run over HTTP answers at the latest: after what its gates allow
/// ([`http_worst_case`], every call at its time bound, a hand-over
/// included), so a run within them is never cut; before API Gateway's
/// 30 s. This bounds what the gates do not (a call past its bound).
pub const HTTP_ANSWER_BY: Duration = Duration::from_millis(28_500);

/// A run started over HTTP, answered by `answer_by` whatever happens: 200
/// with its summary when it finished; 202 when it handed the rest over to
/// other invocations; 503 when orgs went unseen (a failed scan segment, a
/// hand-over not recorded; the log has the rest), or when it was still
/// running at `answer_by`. Lambda freezes the process once the answer is
/// sent, so such a run would neither go on nor hand over: it stops there,
/// as a killed invocation does (every step is guarded, and a notice whose
/// sender stopped mid-call is presumed delivered), and the next run does
/// the rest.
pub async fn run_over_http(deps: &Deps, answer_by: Duration) -> Response<Body> {
    use lambda_http::http::StatusCode;
    let now = deps.clock.now();
    let id = format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), quota_shared::domain::random_u64() as u32);
    let mut run = {
        let (deps, id) = (deps.clone(), id.clone());
        tokio::spawn(async move { run_part(&deps, first_part(id, now), Options::for_http()).await })
    };
    match tokio::time::timeout(answer_by, &mut run).await {
        Ok(Ok(summary)) if summary.segments_failed > 0 || summary.run.hand_over_failed => {
            ApiError::StoreUnavailable.into_response()
        }
        Ok(Ok(summary)) if summary.run.continued => api::json(StatusCode::ACCEPTED, &summary),
        Ok(Ok(summary)) => api::ok(&summary),
        Ok(Err(_)) => ApiError::StoreUnavailable.into_response(),
        Err(_) => {
            run.abort();
            tracing::warn!(
                run = id,
                "daily job over HTTP: stopped at the answer's deadline; the next run does the rest"
            );
            ApiError::StoreUnavailable.into_response()
        }
    }
}

/// The Lambda's event ([`event::Invocation`]): an API Gateway v2 request
/// (the admin route), which gets an API Gateway response; the schedule's
/// event, which starts a run (or continues the one a retry of it began);
/// or `DailyJobContinued`, which resumes one. Those two get the summary,
/// or [`Incomplete`] as the invocation's error (so Lambda retries it); they
/// are bounded by `options`.
pub async fn handle_event(
    deps: &Deps,
    event: serde_json::Value,
    options: Options,
) -> Result<serde_json::Value, Incomplete> {
    let (found, run) = match event::Invocation::parse(event) {
        event::Invocation::Http(request) => {
            let response = event::gateway_response(handle(deps, *request).await);
            return Ok(serde_json::to_value(response).unwrap_or_default());
        }
        event::Invocation::Scheduled(scheduled) => {
            tracing::info!(run = scheduled.run, attempt = scheduled.attempt, "daily job: scheduled");
            (run_scheduled(deps, &scheduled.run, deps.clock.now(), options).await, scheduled.run)
        }
        event::Invocation::Continued { run, part } => (resume(deps, &run, Some(part), options).await, run),
        event::Invocation::Other { source, detail_type } => {
            tracing::warn!(?source, ?detail_type, "daily job: not an event it runs on");
            return Ok(serde_json::json!({ "ignored": true }));
        }
    };
    let summary = match found {
        Ok(Some(summary)) => summary,
        Ok(None) => return Ok(serde_json::json!({ "resumed": false, "run": run })),
        Err(err) => {
            tracing::error!(run, error = %err, "daily job: the run's record could not be read");
            let summary = Summary {
                segments_failed: SEGMENTS as usize,
                run: RunPart { id: run, ..Default::default() },
                ..Default::default()
            };
            return Err(Incomplete(summary));
        }
    };
    if summary.complete() { Ok(serde_json::to_value(summary).unwrap_or_default()) } else { Err(Incomplete(summary)) }
}
