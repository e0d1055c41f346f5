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

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery::{self, DeliveryError};
use quota_shared::domain::events::DailyJobContinued;
use quota_shared::domain::org::OrgId;
use quota_shared::domain::period::ClosedPeriod;
use quota_shared::domain::state::OrgState;
use quota_shared::domain::usage::Counter;
use quota_shared::store::job::{JobRun, OrgEntry, ScanCursor};
use quota_shared::store::notices::NoticeHolder;
use quota_shared::store::snapshots::SNAPSHOT_BATCH;
use quota_shared::store::{Settled, StoreError};
use quota_shared::{ApiError, Deps};
use serde::{Deserialize, Serialize};

/// Parallel scan segments.
pub const SEGMENTS: i32 = 4;
/// Orgs processed at once within one segment.
pub const ORG_CONCURRENCY: usize = 8;
/// Snapshot batches written at once, per segment.
const SNAPSHOT_WRITES: usize = 2;
/// Index entries per scan page (about one per org).
pub const PAGE_SIZE: i32 = 400;
/// Index entries per scan page for a run started over HTTP: a page is
/// finished (or cut short) well within [`HTTP_BUDGET`].
const HTTP_PAGE_SIZE: i32 = 100;
/// What a scheduled invocation keeps back from Lambda's deadline: the pages
/// in hand when the budget runs out still finish, and the hand-over is
/// written.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(120);
/// No org is started closer than this to Lambda's deadline: one org's work
/// (a notice's budget, a few store calls) ends well inside it.
pub const CUTOFF_MARGIN: Duration = Duration::from_secs(30);
/// No notice is delivered closer than this to Lambda's deadline: one
/// delivery (claim, publish, send, mark: [`delivery_takes`]) ends well
/// inside it. An org whose notices are left for that reason is handed on to
/// the next part, with a budget of its own.
pub const DELIVERY_MARGIN: Duration = Duration::from_secs(20);
/// A run started over HTTP must answer within API Gateway's 30 s (past it
/// the gateway answers 503 itself). What is left goes on in other
/// invocations. No new page after 4 s, no new org after 6 s, no new
/// delivery after 8 s: [`http_worst_case`] (28 s) is what an org
/// started at the last moment can still take, with every call at its
/// time bound.
pub const HTTP_BUDGET: Duration = Duration::from_secs(4);
const HTTP_ORG_CUTOFF: Duration = Duration::from_secs(6);
const HTTP_DELIVERY_CUTOFF: Duration = Duration::from_secs(8);
/// Claiming one notice and recording `sending`, in a run over HTTP.
const HTTP_NOTICE_BUDGET: Duration = Duration::from_secs(2);
/// Failed org ids listed in the summary (the count is always complete).
const LISTED_FAILURES: usize = 20;
/// Claiming one notice and recording `sending`, in a scheduled run.
const NOTICE_BUDGET: Duration = Duration::from_secs(5);

/// What one delivery takes at most: the claim (`claim`), one `PutEvents`,
/// one `SendEmail`, the mark.
pub const fn delivery_takes(claim: Duration) -> Duration {
    use quota_shared::timeouts::{EVENTBRIDGE, MARK_BUDGET, SES};
    Duration::from_millis(
        claim.as_millis() as u64
            + EVENTBRIDGE.operation.as_millis() as u64
            + SES.operation.as_millis() as u64
            + MARK_BUDGET.as_millis() as u64,
    )
}

/// How a run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// No new page is started after this; `None` for no bound.
    pub deadline: Option<Instant>,
    /// No new org is started after this, even within a page (a page slower
    /// than the margin before Lambda's timeout is cut short, and the rest
    /// of it handed over); `None` for no bound.
    pub cutoff: Option<Instant>,
    /// No notice (email, event) is delivered after this: what is left stays
    /// owed, and the org is handed on to the run's next part; `None` for no
    /// bound.
    pub deliveries: Option<Instant>,
    /// Index entries per scan page.
    pub page_size: i32,
    /// Claiming each notice and recording `sending`.
    pub notice_budget: Duration,
    /// Notices in a row per counter or closed period (a mark returns the
    /// item as it stands, so one deferred behind this sender's claim is sent
    /// next).
    pub rounds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deadline: None,
            cutoff: None,
            deliveries: None,
            page_size: PAGE_SIZE,
            notice_budget: NOTICE_BUDGET,
            rounds: 3,
        }
    }
}

impl Options {
    /// An invocation whose Lambda deadline is `deadline_ms` (epoch
    /// milliseconds): no new page [`DEADLINE_MARGIN`] before it, no new org
    /// [`CUTOFF_MARGIN`] before it.
    pub fn for_lambda(deadline_ms: u64) -> Options {
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or_default();
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        let now = Instant::now();
        Options {
            deadline: Some(now + left.saturating_sub(DEADLINE_MARGIN)),
            cutoff: Some(now + left.saturating_sub(CUTOFF_MARGIN)),
            deliveries: Some(now + left.saturating_sub(DELIVERY_MARGIN)),
            ..Options::default()
        }
    }

    /// A run started over HTTP: answered within API Gateway's 30 s (see
    /// [`HTTP_BUDGET`]).
    pub fn for_http() -> Options {
        let now = Instant::now();
        Options {
            deadline: Some(now + HTTP_BUDGET),
            cutoff: Some(now + HTTP_ORG_CUTOFF),
            deliveries: Some(now + HTTP_DELIVERY_CUTOFF),
            page_size: HTTP_PAGE_SIZE,
            notice_budget: HTTP_NOTICE_BUDGET,
            rounds: 1,
        }
    }

    /// Whether a notice may still be delivered.
    fn may_deliver(&self) -> bool {
        self.deliveries.is_none_or(|d| Instant::now() < d)
    }
}

/// The longest a run over HTTP can take: its last delivery starts before
/// its cutoff and takes [`delivery_takes`]; the org's other store calls
/// after it (a closed period's record, forgetting settled ones: two), the
/// snapshot batch it is in, and the hand-over (record, announcement, mark)
/// each take at most their time bound.
pub fn http_worst_case() -> Duration {
    use quota_shared::timeouts::{DYNAMODB, EVENTBRIDGE};
    HTTP_DELIVERY_CUTOFF
        + delivery_takes(HTTP_NOTICE_BUDGET)
        + DYNAMODB.operation * 2
        + DYNAMODB.operation
        + DYNAMODB.operation * 2
        + EVENTBRIDGE.operation
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub orgs_seen: usize,
    pub emails_sent: usize,
    pub periods_closed: usize,
    pub trials_expired: usize,
    pub snapshots: usize,
    pub failures: usize,
    pub failed_orgs: Vec<String>,
    /// Every org that failed, for the run's next part to do again.
    #[serde(skip)]
    failed_all: Vec<OrgId>,
    /// Events of admin changes found unpublished in orgs' outboxes, and
    /// published.
    pub outbox_events: usize,
    /// Emails SES refused for good (an unverified recipient in its sandbox,
    /// an address it will not take): their notices are done, unsent, and
    /// each is logged with its org.
    pub emails_rejected: usize,
    /// Orgs whose notices were left owed because this invocation's time
    /// for deliveries was up: handed on to the run's next part.
    pub deferred: usize,
    #[serde(skip)]
    deferred_all: Vec<OrgId>,
    /// Scan segments that failed part way: the orgs behind them were not
    /// seen this run.
    pub segments_failed: usize,
    /// Notices and events whose sender vanished after it began the call
    /// (SES, EventBridge): counted as delivered rather than sent twice. Each
    /// is logged with its org.
    pub presumed_delivered: usize,
    /// Which run this invocation worked on, and which part of it.
    pub run: RunPart,
}

/// An invocation's place in its run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunPart {
    pub id: String,
    /// 1 for the invocation that started the run.
    pub part: u32,
    /// This invocation resumed a run an earlier one handed over.
    pub resumed: bool,
    /// The budget ran out: the rest goes on in the next part.
    pub continued: bool,
    /// The hand-over could not be announced: the rest of the run waits for
    /// this invocation's retry.
    pub hand_over_failed: bool,
    /// Orgs that failed here and were handed over with the rest, for the
    /// run's last part to do again.
    pub failures_handed_over: usize,
    /// Orgs earlier parts failed that this part (the last) did again.
    pub retried: usize,
}

impl Summary {
    /// Whether every org this invocation took on was processed, and what it
    /// left is handed over.
    pub fn complete(&self) -> bool {
        self.failures <= self.run.failures_handed_over && self.segments_failed == 0 && !self.run.hand_over_failed
    }

    fn add(&mut self, org: &OrgId, outcome: Result<OrgOutcome, String>) {
        self.orgs_seen += 1;
        let outcome = match outcome {
            Ok(o) => {
                self.emails_sent += o.emails;
                self.periods_closed += o.periods_closed;
                self.trials_expired += usize::from(o.trial_expired);
                self.snapshots += o.snapshot.len();
                self.presumed_delivered += o.presumed;
                self.outbox_events += o.events;
                self.emails_rejected += o.rejected;
                if o.deferred {
                    self.deferred += 1;
                    self.deferred_all.push(org.clone());
                }
                // A notice that failed fails the org; its snapshot is
                // written all the same.
                match o.error {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {}
            Err(error) => {
                tracing::error!(org = %org, error, "daily job failed for org");
                self.failures += 1;
                self.failed_all.push(org.clone());
                if self.failed_orgs.len() < LISTED_FAILURES {
                    self.failed_orgs.push(org.to_string());
                }
            }
        }
    }
}

/// A scheduled run that did not finish its work: reported to Lambda as the
/// invocation's error, so EventBridge retries the run (every step is
/// guarded, so a retry repeats nothing that was done).
#[derive(Debug, thiserror::Error)]
#[error(
    "daily job incomplete: {} org(s) failed, {} scan segment(s) failed, hand-over failed: {}",
    .0.failures, .0.segments_failed, .0.run.hand_over_failed
)]
pub struct Incomplete(pub Summary);

#[derive(Debug, Default)]
struct OrgOutcome {
    /// A notice or event that could not be delivered (it stays owed): the
    /// org counts as failed, and its snapshot is still written.
    error: Option<String>,
    /// Notices left owed because the time for deliveries was up.
    deferred: bool,
    /// Events published from the org's outbox.
    events: usize,
    /// Emails SES refused for good.
    rejected: usize,
    presumed: usize,
    emails: usize,
    periods_closed: usize,
    trial_expired: bool,
    /// The counters to record in today's snapshot.
    snapshot: Vec<Counter>,
}

impl OrgOutcome {
    fn add(&mut self, done: delivery::Delivery) {
        self.emails += done.emails;
        self.rejected += done.rejected;
    }
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// Runs the job over every org, unbounded in time, in this invocation.
pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Summary {
    run_with(deps, now, Options::default()).await
}

/// Starts a run: every segment from its start.
pub async fn run_with(deps: &Deps, now: DateTime<Utc>, options: Options) -> Summary {
    let id = format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), quota_shared::domain::random_u64() as u32);
    run_part(deps, first_part(id, now), options).await
}

fn first_part(id: String, now: DateTime<Utc>) -> JobRun {
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
async fn take_over(deps: &Deps, run: JobRun, part: u32, options: Options) -> Option<Summary> {
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
async fn run_part(deps: &Deps, run: JobRun, options: Options) -> Summary {
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
async fn hand_over(deps: &Deps, run: &JobRun, left: BTreeMap<i32, ScanCursor>, retry: Vec<OrgId>) -> bool {
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

/// Works through one segment from `cursor`, reading each next page while
/// the current one is worked on. `Ok(Some(cursor))` when the budget ran out
/// first: where the segment stands (after the last org done, when a page
/// was cut short). `Err` carries where the segment stood when a page could
/// not be read.
async fn scan_segment(
    deps: &Deps,
    segment: i32,
    cursor: ScanCursor,
    now: DateTime<Utc>,
    options: Options,
    summary: &Mutex<Summary>,
) -> Result<Option<ScanCursor>, (ScanCursor, StoreError)> {
    let scan = |cursor: ScanCursor| deps.store.scan_orgs(segment, SEGMENTS, cursor, options.page_size);
    let over = || options.deadline.is_some_and(|d| Instant::now() >= d);
    let mut page = scan(cursor.clone()).await.map_err(|e| (cursor, e))?;
    loop {
        let next = page.next.take();
        let prefetch = async {
            match &next {
                Some(cursor) if !over() => Some(scan(cursor.clone()).await),
                _ => None,
            }
        };
        let (cut, fetched) = tokio::join!(process_page(deps, page.orgs, now, options, summary), prefetch);
        if let Some(rest) = cut {
            return Ok(Some(rest));
        }
        match (next, fetched) {
            (None, _) => return Ok(None),
            (Some(next), Some(fetched)) if !over() => page = fetched.map_err(|e| (next, e))?,
            (Some(next), _) => return Ok(Some(next)),
        }
    }
}

/// Works on a page's orgs, `ORG_CONCURRENCY` at a time, and writes their
/// snapshots as each `SNAPSHOT_BATCH` of them is done (one request each):
/// what is held at once is bounded by the concurrency, not the page. Starts
/// no org after `cutoff` (but always the first); when it stopped early,
/// where the segment goes on: after the last org it started, all of which
/// it finished.
async fn process_page(
    deps: &Deps,
    orgs: Vec<OrgEntry>,
    now: DateTime<Utc>,
    options: Options,
    summary: &Mutex<Summary>,
) -> Option<ScanCursor> {
    let cutoff = options.cutoff;
    let total = orgs.len();
    // Written by the stream as it takes orgs, read when it is done (the
    // future must be `Send`, hence the lock).
    let taken: Mutex<(usize, Option<ScanCursor>)> = Mutex::new((0, None));
    let count = || taken.lock().unwrap_or_else(|e| e.into_inner()).0;
    futures::stream::iter(orgs)
        .take_while(|_| std::future::ready(count() == 0 || cutoff.is_none_or(|c| Instant::now() < c)))
        .inspect(|entry| {
            let mut t = taken.lock().unwrap_or_else(|e| e.into_inner());
            *t = (t.0 + 1, Some(entry.after()));
        })
        .map(|entry| async move { (entry.org.clone(), process_org(deps, &entry, now, options).await) })
        .buffer_unordered(ORG_CONCURRENCY)
        .filter_map(|(org, outcome)| async move {
            match outcome {
                Ok(Some(o)) => Some((org, Ok(o))),
                Ok(None) => None,
                Err(err) => Some((org, Err(err.to_string()))),
            }
        })
        .chunks(SNAPSHOT_BATCH)
        .for_each_concurrent(SNAPSHOT_WRITES, |done| record_batch(deps, done, now, summary))
        .await;
    let (started, last) = taken.into_inner().unwrap_or_else(|e| e.into_inner());
    if started < total { last } else { None }
}

/// Writes the snapshots of a batch of orgs done (one request) and adds
/// their outcomes to the summary; an org whose snapshot was not written
/// counts as failed.
async fn record_batch(
    deps: &Deps,
    mut done: Vec<(OrgId, Result<OrgOutcome, String>)>,
    now: DateTime<Utc>,
    summary: &Mutex<Summary>,
) {
    let snapshots: Vec<(OrgId, Vec<Counter>)> =
        done.iter().filter_map(|(org, o)| Some((org.clone(), o.as_ref().ok()?.snapshot.clone()))).collect();
    if !snapshots.is_empty()
        && let Err(err) = deps.store.put_snapshots(&snapshots, now.date_naive(), now).await
    {
        for (_, outcome) in done.iter_mut().filter(|(_, o)| o.is_ok()) {
            *outcome = Err(format!("snapshot not written: {err}"));
        }
    }
    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
    for (org, outcome) in done {
        s.add(&org, outcome);
    }
}

/// One org's daily work, on its state read now (one consistent `Query`).
/// `None` when the org has no profile any more.
async fn process_org(
    deps: &Deps,
    entry: &OrgEntry,
    now: DateTime<Utc>,
    options: Options,
) -> Result<Option<OrgOutcome>, JobError> {
    let Some(mut state) = deps.store.org_state(&entry.org).await? else {
        return Ok(None);
    };
    // 0. Holds and grants that have expired come off (the units held come
    //    back, each grant's `GrantExpired` is published once), so what
    //    follows works with the limits in force.
    let lapsed: Vec<Counter> = state.counters.values().filter(|c| c.lapsed(now)).cloned().collect();
    // A sweep closes an ended period first (billed on the grants it had).
    let swept_over = lapsed.iter().any(|c| c.period_ended(now));
    if !lapsed.is_empty() {
        for counter in &lapsed {
            let expired = deps.store.sweep(&entry.org, counter, now).await?;
            delivery::grants_expired(deps, &entry.org, &expired, now).await;
        }
        let Some(swept) = deps.store.org_state(&entry.org).await? else {
            return Ok(None);
        };
        state = swept;
    }
    let state = &state;
    let profile = &state.profile;
    let org = &profile.org_id;
    let mut outcome = OrgOutcome { presumed: settle_lapsed(deps, state).await?, ..Default::default() };
    let mut errors = Vec::new();

    // Events of admin changes that no request published (its answer was
    // lost, it stopped): from the outbox the org's state carries.
    if !state.outbox.is_empty() {
        if options.may_deliver() {
            outcome.events += delivery::publish_outbox(deps, org, &state.outbox).await;
        } else {
            outcome.deferred = true;
        }
    }

    // 1. Threshold emails still owed, on the counters as stored: a period
    //    that has just ended still owes its own (the claim is pinned to it).
    let (budget, rounds) = (options.notice_budget, options.rounds);
    for counter in state.counters.values() {
        if !options.may_deliver() {
            outcome.deferred = true;
            break;
        }
        match delivery::deliver_threshold(deps, profile, counter, now, budget, rounds).await {
            Ok(done) => outcome.add(done),
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 2. Close ended periods (a notice still owed moves to the period's
    //    record), then finish what closed periods still owe: the notice,
    //    and the `UsagePeriodClosed` event. The index is eventually
    //    consistent, so closed periods are read from the table whenever it
    //    lists any; those it lists that are settled leave it.
    let mut rolled = swept_over;
    for counter in state.counters.values() {
        if counter.period_ended(now) {
            deps.store.roll_over(org, counter, now).await?;
            rolled = true;
        }
    }
    // A period that began in the last two days was closed just now, maybe
    // by a consume, maybe after the index scan read this org: its record is
    // read from the table whether or not the index lists it yet.
    let recent = |c: &Counter| c.period.is_some_and(|p| now - p.start < chrono::Duration::days(2));
    if rolled || entry.lists_closed() || state.counters.values().any(recent) {
        let mut closed = deps.store.pending_closed(org).await?;
        deps.store.forget_settled(entry, &closed).await?;
        // Lapsed claims on closed records, from this consistent read (a
        // rollover after the scan may have moved one there).
        let settled = settle_closed(deps, org, &closed).await?;
        if settled > 0 {
            outcome.presumed += settled;
            closed = deps.store.pending_closed(org).await?;
        }
        for record in closed.iter().filter(|c| c.owed) {
            if !options.may_deliver() {
                outcome.deferred = true;
                break;
            }
            match delivery::deliver_closed_threshold(deps, profile, record, now, budget, rounds).await {
                Ok(done) => outcome.add(done),
                Err(err) => errors.push(JobError::from(err)),
            }
        }
        let unemitted: Vec<ClosedPeriod> = closed.into_iter().filter(|c| !c.emitted).collect();
        if !unemitted.is_empty() && !options.may_deliver() {
            outcome.deferred = true;
        } else {
            match delivery::deliver_period_closes(deps, org, &profile.plan, unemitted, now).await {
                Ok(emitted) => outcome.periods_closed = emitted,
                Err(err) => errors.push(JobError::from(err)),
            }
        }
    }

    // 3. Trial expiry: one email, one event.
    let trial_over = profile.active_trial(deps.catalogue).is_some_and(|end| end <= now);
    if trial_over && state.trial_notified_at.is_none() && !options.may_deliver() {
        outcome.deferred = true;
    } else if trial_over && state.trial_notified_at.is_none() {
        match delivery::deliver_trial_ended(deps, profile, now, budget).await {
            Ok(Some(done)) => {
                outcome.trial_expired = true;
                outcome.add(done);
            }
            Ok(None) => {}
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 4. Today's snapshot, of the counters as they stand now (written with
    //    the page's others).
    outcome.snapshot = state.counters_at(deps.catalogue, now);
    outcome.error = errors.into_iter().next().map(|err| err.to_string());
    Ok(Some(outcome))
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

/// `POST /v1/admin/jobs/daily`: runs the job now, for at most
/// [`HTTP_BUDGET`], and answers its summary: 200 when the run finished,
/// 202 when it goes on in other invocations (`run.continued`).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::UsageJob) {
        Ok(call) if call.route.endpoint == Endpoint::DailyJob => Ok(run_over_http(deps, HTTP_ANSWER_BY).await),
        Ok(_) => Err(ApiError::NotFound),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// When a run over HTTP answers at the latest. Its gates
/// ([`http_worst_case`]) end it well before; this bounds what they do not
/// (a store whose every call takes its whole time bound).
pub const HTTP_ANSWER_BY: Duration = Duration::from_secs(27);

/// A run started over HTTP, answered by `answer_by` whatever happens: 200
/// with its summary when it finished; 202 when it goes on (handed over, or
/// still running after `answer_by`: it is not cut short, and its summary
/// then names the run and says it continues); 503 when orgs went unseen (a
/// failed scan segment, a hand-over not recorded; the log has the rest).
pub async fn run_over_http(deps: &Deps, answer_by: Duration) -> Response<Body> {
    use lambda_http::http::StatusCode;
    let now = deps.clock.now();
    let id = format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), quota_shared::domain::random_u64() as u32);
    let run = {
        let (deps, id) = (deps.clone(), id.clone());
        tokio::spawn(async move { run_part(&deps, first_part(id, now), Options::for_http()).await })
    };
    match tokio::time::timeout(answer_by, run).await {
        Ok(Ok(summary)) if summary.segments_failed > 0 || summary.run.hand_over_failed => {
            ApiError::StoreUnavailable.into_response()
        }
        Ok(Ok(summary)) if summary.run.continued => api::json(StatusCode::ACCEPTED, &summary),
        Ok(Ok(summary)) => api::ok(&summary),
        Ok(Err(_)) => ApiError::StoreUnavailable.into_response(),
        Err(_) => {
            tracing::warn!(run = id, "daily job over HTTP: still running at the answer's deadline");
            let summary =
                Summary { run: RunPart { id, part: 1, continued: true, ..Default::default() }, ..Default::default() };
            api::json(StatusCode::ACCEPTED, &summary)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// API Gateway answers 503 itself after 30 s: a run over HTTP, every
    /// call at its time bound, answers before that.
    #[test]
    fn a_run_over_http_answers_within_the_gateways_30_seconds() {
        assert!(http_worst_case() <= Duration::from_secs(28), "{:?}", http_worst_case());
        assert!(HTTP_BUDGET < HTTP_ORG_CUTOFF && HTTP_ORG_CUTOFF < HTTP_DELIVERY_CUTOFF);
    }

    /// A scheduled run's last delivery ends well before Lambda's deadline.
    #[test]
    fn a_scheduled_runs_deliveries_end_before_lambdas_deadline() {
        assert!(delivery_takes(NOTICE_BUDGET) * 3 < DELIVERY_MARGIN + Duration::from_secs(10));
        assert!(delivery_takes(NOTICE_BUDGET) < DELIVERY_MARGIN);
    }
}
