//! A run and its parts: starting, resuming and taking over a part, and
//! handing the rest of a run over to the next invocation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use quota_shared::Deps;
use quota_shared::domain::events::DailyJobContinued;
use quota_shared::domain::org::OrgId;
use quota_shared::store::StoreError;
use quota_shared::store::job::{JobRun, OrgEntry, ScanCursor};

use crate::bounds::{Options, SEGMENTS};
use crate::scan::{process_page, scan_segment};
use crate::summary::{RunPart, Summary};

/// Runs the job over every org, unbounded in time, in this invocation.
pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Summary {
    run_with(deps, now, Options::default()).await
}

/// Starts a run: every segment from its start.
pub async fn run_with(deps: &Deps, now: DateTime<Utc>, options: Options) -> Summary {
    let id = format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), quota_shared::domain::random_u64() as u32);
    run_part(deps, first_part(id, now), options).await
}

pub(crate) fn first_part(id: String, now: DateTime<Utc>) -> JobRun {
    let cursors = (0..SEGMENTS).map(|segment| (segment, ScanCursor::default())).collect();
    JobRun { id, part: 1, now, cursors, announced: false, done: false, retry: Vec::new() }
}

/// Starts run `id`, the one a scheduled event names (its day and the
/// event's id): Lambda's retry of that event is the same run, so it does
/// not start a second one beside the parts the first attempt handed over.
pub async fn run_scheduled(
    deps: &Deps,
    id: &str,
    now: DateTime<Utc>,
    options: Options,
) -> Result<Option<Summary>, StoreError> {
    match deps.store.job_run(id).await? {
        None => Ok(Some(run_part(deps, first_part(id.to_string(), now), options).await)),
        Some(run) => Ok(take_over(deps, run, 1, options).await),
    }
}

/// Resumes run `id` at part `part` (an announced part's event), or, with
/// `None`, wherever its record says it stands. `None` when there is nothing
/// for this invocation to do: the run finished, its record is gone, or
/// another invocation has that part.
pub async fn resume(deps: &Deps, id: &str, part: Option<u32>, options: Options) -> Result<Option<Summary>, StoreError> {
    match deps.store.job_run(id).await? {
        Some(run) => {
            let part = part.unwrap_or(run.part);
            Ok(take_over(deps, run, part, options).await)
        }
        None => {
            tracing::warn!(run = id, "daily job run not found: nothing to resume");
            Ok(None)
        }
    }
}

/// An invocation of part `part` of a recorded run: it does that part if
/// the record is still at it (a retry of a part that handed over nothing),
/// or the next one if it was recorded but never announced (the hand-over
/// failed half way); otherwise another invocation has the work.
pub(crate) async fn take_over(deps: &Deps, run: JobRun, part: u32, options: Options) -> Option<Summary> {
    let ours = !run.done && (run.part == part || (run.part == part + 1 && !run.announced));
    if !ours {
        tracing::info!(run = run.id, part, at = run.part, done = run.done, "daily job: nothing to do for this part");
        return None;
    }
    Some(run_part(deps, run, options).await)
}

/// One part of a run: the segments `run.cursors` names, from where they
/// stand, until they end or the budget runs out; then the run is finished
/// or handed over to the next part, with the orgs that failed so far. The
/// last part does those again: the run is finished only when none is left
/// failed (otherwise the part fails its invocation, and Lambda's retry of
/// it does them again).
pub(crate) async fn run_part(deps: &Deps, run: JobRun, options: Options) -> Summary {
    let summary = Mutex::new(Summary::default());
    let segments = run.cursors.iter().map(|(segment, cursor)| async {
        (*segment, scan_segment(deps, *segment, cursor.clone(), run.now, options, &summary).await)
    });
    let mut left = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (segment, outcome) in futures::future::join_all(segments).await {
        match outcome {
            Ok(Some(cursor)) => {
                left.insert(segment, cursor);
            }
            Ok(None) => {}
            Err((cursor, err)) => {
                tracing::error!(segment, error = %err, "daily job: a scan segment failed");
                failed.insert(segment, cursor);
            }
        }
    }
    let last = left.is_empty() && failed.is_empty();
    let take_up = last && !run.retry.is_empty() && options.may_deliver();
    if take_up {
        let retry: Vec<OrgEntry> = run.retry.iter().cloned().map(OrgEntry::to_retry).collect();
        tracing::info!(run = run.id, orgs = retry.len(), "daily job: the orgs earlier parts failed, again");
        let before = summary.lock().unwrap_or_else(|e| e.into_inner()).orgs_seen;
        process_page(deps, retry, run.now, Options { cutoff: None, ..options }, &summary).await;
        let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
        s.run.retried = s.orgs_seen - before;
    }
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.segments_failed = failed.len();
    let retried = summary.run.retried;
    summary.run = RunPart { id: run.id.clone(), part: run.part, resumed: run.part > 1, retried, ..Default::default() };
    // Orgs left for the next part: those whose notices this invocation had
    // no time to deliver (and, from the last part, the carried ones it had
    // no time to take up again).
    let mut handed_on: Vec<OrgId> = summary.deferred_all.clone();
    if last && !take_up {
        handed_on.extend(run.retry.iter().cloned());
    }
    if last && handed_on.is_empty() {
        if run.part > 1
            && summary.failures == 0
            && let Err(err) = deps.store.finish_run(&run.id, run.part).await
        {
            tracing::warn!(run = run.id, error = %err, "daily job: the finished run could not be marked");
        }
    } else if !left.is_empty() || !handed_on.is_empty() {
        // The next part also takes up a failed segment where it stopped,
        // and the orgs that failed or were deferred so far.
        left.extend(failed);
        let mut retry = if last { Vec::new() } else { run.retry.clone() };
        retry.extend(handed_on);
        retry.extend(summary.failed_all.iter().cloned());
        retry.sort();
        retry.dedup();
        // Past the cap the part hands over the first orgs only and fails
        // its invocation (the alarm fires); the rest wait for the next
        // day's run.
        let carried = retry.len() <= quota_shared::store::job::MAX_RETRY_CARRIED;
        if !carried {
            tracing::error!(
                run = run.id,
                orgs = retry.len(),
                "daily job: too many failed orgs to hand over; the rest wait for tomorrow's run"
            );
            retry.truncate(quota_shared::store::job::MAX_RETRY_CARRIED);
        }
        summary.run.continued = true;
        summary.run.failures_handed_over = if carried { summary.failures } else { 0 };
        summary.run.hand_over_failed = !hand_over(deps, &run, left, retry).await;
    }
    // Failed segments and nothing else left, or failed orgs in the last
    // part: the run stays at this part, and Lambda's retry of this
    // invocation does it again.
    if summary.complete() {
        tracing::info!(?summary, "daily job done");
    } else {
        tracing::error!(?summary, "daily job done, incomplete");
    }
    summary
}

/// Records where the unfinished segments stand and announces the next part.
/// `false` when that failed: this invocation's retry then does the next
/// part itself (the record says it was not announced).
pub(crate) async fn hand_over(deps: &Deps, run: &JobRun, left: BTreeMap<i32, ScanCursor>, retry: Vec<OrgId>) -> bool {
    let next = JobRun {
        id: run.id.clone(),
        part: run.part + 1,
        now: run.now,
        cursors: left,
        announced: false,
        done: false,
        retry,
    };
    match deps.store.hand_over(&next, deps.clock.now()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(run = run.id, part = next.part, "daily job: another invocation handed over first");
            return true;
        }
        Err(err) => {
            tracing::error!(run = run.id, error = %err, "daily job: the hand-over could not be recorded");
            return false;
        }
    }
    match deps.events.publish(&DailyJobContinued { run_id: next.id.clone(), part: next.part }).await {
        Ok(()) => {
            tracing::info!(run = run.id, part = next.part, "daily job: handed over to the next part");
            if let Err(err) = deps.store.mark_announced(&next.id, next.part).await {
                // A retry of this part would then do the next one too:
                // twice the work, every step of it guarded.
                tracing::warn!(run = run.id, error = %err, "daily job: the announcement could not be recorded");
            }
            true
        }
        Err(err) => {
            tracing::error!(run = run.id, error = %err, "daily job: the hand-over could not be announced");
            false
        }
    }
}
