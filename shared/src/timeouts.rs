//! Every bound on time, in one place. A stalled dependency must turn into
//! the contract's answer (`503 STORE_UNAVAILABLE`, a deferred email), never
//! into the function timeout and API Gateway's own error.
//!
//! | what | connect | one attempt | whole operation | attempts |
//! |---|---|---|---|---|
//! | DynamoDB | 0.5 s | 1 s | 2.5 s | 4 |
//! | SES v2 | 0.5 s | 1.5 s | 1.5 s | 1 |
//! | EventBridge | 0.5 s | 1 s | 1 s | 1 |
//!
//! `SendEmail` and `PutEvents` are not idempotent: the SDK never retries
//! them, since an attempt that timed out may have been delivered (the job
//! retries what certainly failed).
//!
//! A request's store work gets [`STORE_BUDGET`]. A consume's notification
//! work then gets [`NOTIFY_BUDGET`] to claim the notice and record that it
//! is sending; the calls themselves are never cut (each is bounded by its
//! own timeout above), nor is the mark or release after them, which share
//! [`MARK_BUDGET`]. [`WORST_CASE_REQUEST`] is what an API function needs at
//! most; its timeout in `template.yaml` is larger (a test checks it).

use std::future::Future;
use std::time::Duration;

/// Bounds on one AWS client's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub max_attempts: u32,
    /// First retry waits up to this long (jittered), doubling each time.
    pub initial_backoff: Duration,
}

pub const DYNAMODB: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_secs(1),
    operation: Duration::from_millis(2500),
    max_attempts: 4,
    initial_backoff: Duration::from_millis(25),
};

/// No retries: an attempt that timed out may have been delivered, and a
/// second one would send the email twice. A failed send is the job's.
pub const SES: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_millis(1500),
    operation: Duration::from_millis(1500),
    max_attempts: 1,
    initial_backoff: Duration::from_millis(100),
};

/// No retries, as for SES: a second `PutEvents` after an attempt that timed
/// out would publish the event twice.
pub const EVENTBRIDGE: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_secs(1),
    operation: Duration::from_secs(1),
    max_attempts: 1,
    initial_backoff: Duration::from_millis(50),
};

/// SQS, for channel deliveries (`functions/deliver-channels`): a queued
/// delivery sent twice is the same delivery (its `webhook-id`), so the SDK
/// may retry.
pub const SQS: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(5),
    max_attempts: 3,
    initial_backoff: Duration::from_millis(50),
};

/// All the store work of one API request: past it, the request answers
/// `503 STORE_UNAVAILABLE` (with `Retry-After`), within 3 s in all.
pub const STORE_BUDGET: Duration = Duration::from_millis(2800);

/// All the store work of an admin's write (a grant, a revoke, a reset, a
/// plan change): time to retry, jittered, through a burst of transactions
/// on the same counter (on DynamoDB, every keyed consume in flight cancels
/// an admin's transaction on that counter).
pub const ADMIN_STORE_BUDGET: Duration = Duration::from_secs(5);

/// A consume's notification work before its calls, after its write
/// committed: reading the profile, claiming the notice and recording that
/// it is sending. Past it the notice stays owed and the daily job sends it.
pub const NOTIFY_BUDGET: Duration = Duration::from_secs(1);

/// The mark (or release) after a notice's calls, its fallback to a closed
/// period's record included. Past it the claim is left to lapse, and is
/// settled as delivered (it was recording `sending`).
pub const MARK_BUDGET: Duration = Duration::from_secs(2);

/// The `GrantExpired` events of the grants a request's write took off, all
/// of them: past it, the rest are logged (the grants are off either way).
pub const EXPIRED_GRANTS_BUDGET: Duration = EVENTBRIDGE.operation;
/// The longest an API request can take: its store work, the `GrantExpired`
/// events, its notification work, one `PutEvents`, one `SendEmail`, and the
/// mark.
pub const WORST_CASE_REQUEST: Duration = Duration::from_millis(
    STORE_BUDGET.as_millis() as u64
        + EXPIRED_GRANTS_BUDGET.as_millis() as u64
        + NOTIFY_BUDGET.as_millis() as u64
        + EVENTBRIDGE.operation.as_millis() as u64
        + SES.operation.as_millis() as u64
        + MARK_BUDGET.as_millis() as u64,
);

/// Publishing what an org's outbox holds after an admin write: reading it,
/// one `PutEvents`, taking the events off. Past it, they wait for the next
/// finder (a retry, the next admin write, the daily job).
pub const OUTBOX_BUDGET: Duration = Duration::from_secs(2);

/// The longest an admin's write can take: its store work, the
/// `GrantExpired` events of grants its write took off, and its outbox.
pub const WORST_CASE_ADMIN_REQUEST: Duration = Duration::from_millis(
    ADMIN_STORE_BUDGET.as_millis() as u64 + EXPIRED_GRANTS_BUDGET.as_millis() as u64 + OUTBOX_BUDGET.as_millis() as u64,
);

/// Runs `work` for at most `budget`; `None` when the budget ran out first
/// (the work is dropped).
pub async fn within<T>(budget: Duration, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(budget, work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_store_is_answered_within_three_seconds() {
        assert!(STORE_BUDGET < Duration::from_secs(3));
        assert!(DYNAMODB.operation <= STORE_BUDGET, "one operation fits the request's budget");
        assert!(DYNAMODB.attempt < DYNAMODB.operation, "a timed-out attempt leaves room for a retry");
    }

    #[test]
    fn emails_and_events_are_never_retried_by_the_sdk() {
        assert_eq!((SES.max_attempts, EVENTBRIDGE.max_attempts), (1, 1));
        assert_eq!((SES.attempt, EVENTBRIDGE.attempt), (SES.operation, EVENTBRIDGE.operation));
    }

    #[test]
    fn worst_case_is_the_sum_of_its_parts() {
        let parts =
            STORE_BUDGET + EXPIRED_GRANTS_BUDGET + NOTIFY_BUDGET + EVENTBRIDGE.operation + SES.operation + MARK_BUDGET;
        assert_eq!(WORST_CASE_REQUEST, parts);
        assert!(WORST_CASE_REQUEST < Duration::from_secs(10), "{WORST_CASE_REQUEST:?} leaves room in 11 s");
        assert_eq!(WORST_CASE_ADMIN_REQUEST, ADMIN_STORE_BUDGET + EXPIRED_GRANTS_BUDGET + OUTBOX_BUDGET);
    }
}
