//! How a run is bounded: its scan's shape, and the time it may take, in a
//! scheduled invocation (Lambda's deadline) or over HTTP (API Gateway's 30 s).

use std::time::{Duration, Instant};

use chrono::Utc;

/// Parallel scan segments.
pub const SEGMENTS: i32 = 4;
/// Orgs processed at once within one segment.
pub const ORG_CONCURRENCY: usize = 8;
/// Snapshot batches written at once, per segment.
pub(crate) const SNAPSHOT_WRITES: usize = 2;
/// Index entries per scan page (about one per org).
pub const PAGE_SIZE: i32 = 400;
/// Index entries per scan page for a run started over HTTP: a page is
/// finished (or cut short) well within [`HTTP_BUDGET`].
pub(crate) const HTTP_PAGE_SIZE: i32 = 100;
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
pub(crate) const HTTP_ORG_CUTOFF: Duration = Duration::from_secs(6);
pub(crate) const HTTP_DELIVERY_CUTOFF: Duration = Duration::from_secs(8);
/// Claiming one notice and recording `sending`, in a run over HTTP.
pub(crate) const HTTP_NOTICE_BUDGET: Duration = Duration::from_secs(2);
/// Failed org ids listed in the summary (the count is always complete).
pub(crate) const LISTED_FAILURES: usize = 20;
/// Claiming one notice and recording `sending`, in a scheduled run.
pub(crate) const NOTICE_BUDGET: Duration = Duration::from_secs(5);

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
    pub(crate) fn may_deliver(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// API Gateway answers 503 itself after 30 s: a run over HTTP, every
    /// call at its time bound, answers before that.
    #[test]
    fn a_run_over_http_answers_within_the_gateways_30_seconds() {
        assert!(http_worst_case() <= Duration::from_secs(28), "{:?}", http_worst_case());
        assert!(HTTP_BUDGET < HTTP_ORG_CUTOFF && HTTP_ORG_CUTOFF < HTTP_DELIVERY_CUTOFF);
        // The answer's deadline cuts no run its gates allow (a hand-over
        // cut between its record and its event would be orphaned), and
        // leaves the gateway a second and a half.
        assert!(http_worst_case() < crate::HTTP_ANSWER_BY, "{:?}", crate::HTTP_ANSWER_BY);
        assert!(crate::HTTP_ANSWER_BY <= Duration::from_millis(28_500));
    }

    /// A scheduled run's last delivery ends well before Lambda's deadline.
    #[test]
    fn a_scheduled_runs_deliveries_end_before_lambdas_deadline() {
        assert!(delivery_takes(NOTICE_BUDGET) * 3 < DELIVERY_MARGIN + Duration::from_secs(10));
        assert!(delivery_takes(NOTICE_BUDGET) < DELIVERY_MARGIN);
    }
}
