//! The DynamoDB request patterns the store is built from, each written once:
//! what a conditional write came to, a transaction (retried while only
//! other transactions stand in its way), a query of one partition (every
//! page of it), and the backoff between retries.
//! Single-item writes that meet a transaction are retried by the client
//! itself (`crate::clients`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem};

use super::attrs::s;

use super::attrs::Item;

use super::StoreError;

tokio::task_local! {
    static WORK: Work;
}

/// One API request's store work: when it must be done by, and whether the
/// write its caller asked for (its *own* write: the consume, the grant, …)
/// has been sent. A request cut short, or failed, after its own write was
/// sent cannot say "nothing was recorded": its outcome is unknown.
#[derive(Debug, Clone)]
pub struct Work {
    deadline: Instant,
    /// An own write was sent and its outcome is not known.
    unknown: Arc<AtomicBool>,
    /// An own write was applied (or, at least, not refused).
    applied: Arc<AtomicBool>,
}

impl Work {
    /// Store work that must end within `budget`.
    pub fn within(budget: Duration) -> Work {
        Work { deadline: Instant::now() + budget, unknown: Arc::default(), applied: Arc::default() }
    }

    /// Runs `work` as this request's store work, cut short at the deadline
    /// (`None`).
    pub fn run<F: Future>(&self, work: F) -> tokio::time::Timeout<tokio::task::futures::TaskLocalFuture<Work, F>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, WORK.scope(self.clone(), work))
    }

    /// Whether one of the request's own writes was sent and not certainly
    /// refused: something may have been recorded (a request that writes
    /// several, a reset of every resource, may fail after the first).
    pub fn own_write_sent(&self) -> bool {
        self.unknown.load(Ordering::SeqCst) || self.applied.load(Ordering::SeqCst)
    }

    /// Whether the current request's work has time for one more DynamoDB
    /// attempt after waiting `pause`; outside a request, whether `attempt`
    /// is below [`MAX_ATTEMPTS`].
    fn time_for_another(attempt: u32, pause: Duration) -> bool {
        WORK.try_with(|w| Instant::now() + pause + crate::timeouts::DYNAMODB.attempt < w.deadline)
            .unwrap_or(attempt + 1 < MAX_ATTEMPTS)
    }
}

/// A failed write that may still have been applied.
pub(crate) trait MayHaveApplied {
    fn may_have_applied(&self) -> bool;
}

impl MayHaveApplied for StoreError {
    fn may_have_applied(&self) -> bool {
        StoreError::may_have_applied(self)
    }
}

impl<E: std::error::Error + 'static> MayHaveApplied for SdkError<E, HttpResponse> {
    fn may_have_applied(&self) -> bool {
        crate::clients::may_have_applied(self)
    }
}

/// An own write sent earlier may have been applied, whatever the last
/// attempt came to: the request's outcome is unknown.
pub(crate) fn outcome_unknown_now() {
    let _ = WORK.try_with(|w| w.unknown.store(true, Ordering::SeqCst));
}

/// Sends one of the request's own writes (see [`Work`]): its outcome is
/// unknown from now until it answers; an answer that is not a certain
/// refusal counts as applied, whatever later writes of the request come to.
pub(crate) async fn own<T, E: MayHaveApplied>(write: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let set = |flag: fn(&Work) -> &AtomicBool, value: bool| {
        let _ = WORK.try_with(|w| flag(w).store(value, Ordering::SeqCst));
    };
    set(|w| &w.unknown, true);
    // Boxed, as `api::bounded` boxes its work: this wraps the deepest
    // futures of the store (the SDK's), which would otherwise sit in every
    // caller's frame.
    let result = Box::pin(write).await;
    match &result {
        Ok(_) => {
            set(|w| &w.applied, true);
            set(|w| &w.unknown, false);
        }
        Err(err) if !err.may_have_applied() => set(|w| &w.unknown, false),
        Err(_) => {}
    }
    result
}

/// Attempts of a read-decide-write loop, or of a transaction that keeps
/// meeting others, before the store gives up (and the request answers 503).
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// A conditional write's outcome: `Ok(true)` when it was applied,
/// `Ok(false)` when its condition did not hold; other errors stay errors.
pub(crate) fn applied<O, E>(result: Result<O, SdkError<E, HttpResponse>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

/// For a failed conditional UpdateItem: `Some(old item or None)`; for any
/// other error: `None`.
pub(crate) fn condition_failed_item(err: &SdkError<UpdateItemError>) -> Option<Option<Item>> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => Some(e.item().cloned()),
        _ => None,
    }
}

/// One item by its key, read consistently: what a write decided on is there.
pub(crate) async fn get_consistent(client: &Client, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
    let out = client.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await?;
    Ok(out.item)
}

/// Puts `item` unless an item with its key exists: `Ok(false)` when one did.
pub(crate) async fn put_if_absent(client: &Client, table: &str, item: Item) -> Result<bool, StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    applied(result)
}

/// The same as a transaction's item.
pub(crate) fn put_if_absent_in(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What a transaction came to.
#[derive(Debug)]
pub(crate) enum Transacted {
    Committed,
    /// A condition did not hold: one reason per item, in order, with the
    /// item as it was where the write asked for it.
    Refused(Vec<CancellationReason>),
}

/// Cancellation reasons that only say another request stood in the way.
const TRANSIENT_REASONS: &[&str] = &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"];

/// Sends a transaction under a `ClientRequestToken`, so that sending it
/// again is safe: DynamoDB answers a repeat of a transaction it carried out
/// with success, and changes nothing. So a transaction whose answer never
/// came (a timeout, a lost connection, a 5xx), or that is still in
/// progress, is sent again with the same token until its outcome is known;
/// if the time runs out first, its outcome is unknown (`NoAnswer`), even
/// when the last attempt was refused outright (throttling), since an
/// earlier one may have been applied. One cancelled only because other
/// transactions (or throttling) stood in the way was not applied (a repeat
/// of an applied token would have succeeded), and is sent again with a new
/// token after a jittered backoff. Either goes on while the request's
/// budget leaves time for another attempt (outside a request, up to
/// [`MAX_ATTEMPTS`] times): an admin's request, with a budget of seconds,
/// outlasts a burst of transactions on a hot counter. `client` must not
/// retry an attempt that may have been applied (`Store`'s single-write
/// client): this loop must see every such attempt.
pub(crate) async fn transact(
    client: &Client,
    operation: &'static str,
    items: Vec<TransactWriteItem>,
) -> Result<Transacted, StoreError> {
    let mut token = crate::domain::random_hex(16);
    let mut attempt = 0;
    // An attempt under the current token may have been applied.
    let mut unsure = false;
    loop {
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .client_request_token(&token)
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Transacted::Committed),
            Err(err) => err,
        };
        let pause = backoff_for(attempt);
        let more = Work::time_for_another(attempt, pause);
        let give_up = |err: StoreError, unsure: bool| {
            if unsure {
                tracing::warn!(operation, "transaction's outcome unknown: an earlier attempt may have been applied");
                Err(StoreError::NoAnswer { summary: format!("{operation}: outcome unknown"), source: Box::new(err) })
            } else {
                Err(err)
            }
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                // Under this token: so no earlier attempt of it was applied.
                unsure = false;
                let reasons = cancelled.cancellation_reasons();
                let code = |r: &CancellationReason| r.code().unwrap_or("None").to_string();
                if reasons.iter().any(|r| code(r) == "ConditionalCheckFailed") {
                    return Ok(Transacted::Refused(reasons.to_vec()));
                }
                let transient = reasons.iter().any(|r| TRANSIENT_REASONS.contains(&code(r).as_str()))
                    && reasons.iter().all(|r| code(r) == "None" || TRANSIENT_REASONS.contains(&code(r).as_str()));
                if !transient || !more {
                    return Err(if transient { StoreError::Contended(operation) } else { err.into() });
                }
                tracing::debug!(operation, attempt, "transaction met another; retrying");
                token = crate::domain::random_hex(16);
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                unsure = true;
                if !more {
                    return give_up(err.into(), unsure);
                }
                tracing::debug!(operation, attempt, "transaction still in progress; asking again");
            }
            _ if crate::clients::may_have_applied(&err) => {
                unsure = true;
                if !more {
                    return give_up(err.into(), unsure);
                }
                tracing::debug!(operation, attempt, "transaction's outcome unknown; sending it again with its token");
            }
            _ if is_throttling(&err) && more => {
                tracing::debug!(operation, attempt, "transaction throttled; sending it again with its token");
            }
            _ => return give_up(err.into(), unsure),
        }
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

/// DynamoDB refused the request as a whole for its rate: certainly not
/// applied.
fn is_throttling<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    matches!(code, Some("ThrottlingException" | "ProvisionedThroughputExceededException" | "RequestLimitExceeded"))
}

/// The reason code of item `index` of a refused transaction (`"None"` when
/// that item's condition held).
pub(crate) fn reason(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(CancellationReason::code).unwrap_or("None")
}

/// Jittered exponential backoff: about 5 ms, 10 ms, … up to 320 ms.
pub(crate) async fn backoff(attempt: u32) {
    tokio::time::sleep(backoff_for(attempt)).await;
}

fn backoff_for(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(6);
    let jitter = crate::domain::random_u64() % base.max(1);
    Duration::from_millis(base / 2 + jitter)
}

/// Which items of one partition a [`Query`] reads, by sort key.
pub(crate) enum SortKeys {
    /// Sort keys that begin with this.
    Prefix(String),
    /// Sort keys from the first to the second, both included.
    Between(String, String),
}

/// A query of one partition: its items in sort-key order (or the reverse),
/// optionally filtered and capped, following every page so a filter that
/// drops a whole page cannot end the read early.
pub(crate) struct Query {
    pub pk: String,
    pub sort: SortKeys,
    pub filter: Option<&'static str>,
    pub consistent: bool,
    pub newest_first: bool,
    pub limit: Option<usize>,
    /// A projection expression and its attribute names (`#name`, name).
    pub projection: Option<(&'static str, Vec<(&'static str, String)>)>,
}

impl Query {
    pub fn new(pk: String, sort: SortKeys) -> Self {
        Query { pk, sort, filter: None, consistent: false, newest_first: false, limit: None, projection: None }
    }

    pub async fn items(&self, client: &Client, table: &str) -> Result<Vec<Item>, StoreError> {
        let (condition, range) = match &self.sort {
            SortKeys::Prefix(prefix) => ("pk = :pk AND begins_with(sk, :from)", vec![(":from", prefix)]),
            SortKeys::Between(from, to) => {
                ("pk = :pk AND sk BETWEEN :from AND :to", vec![(":from", from), (":to", to)])
            }
        };
        let mut found = Vec::new();
        if self.limit == Some(0) {
            return Ok(found);
        }
        let mut start = None;
        loop {
            let mut request = client
                .query()
                .table_name(table)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", s(&self.pk))
                .consistent_read(self.consistent)
                .scan_index_forward(!self.newest_first)
                .set_filter_expression(self.filter.map(str::to_string))
                .set_exclusive_start_key(start);
            for (name, value) in &range {
                request = request.expression_attribute_values(*name, s(value.as_str()));
            }
            if let Some((expression, names)) = &self.projection {
                request = request.projection_expression(*expression);
                for (placeholder, name) in names {
                    request = request.expression_attribute_names(*placeholder, name);
                }
            }
            if let (Some(limit), None) = (self.limit, self.filter) {
                // Without a filter every item read is kept: read no more.
                request = request.limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX));
            }
            let out = request.send().await?;
            found.extend(out.items.unwrap_or_default());
            if let Some(limit) = self.limit
                && found.len() >= limit
            {
                found.truncate(limit);
                return Ok(found);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review defect: a request that writes several items (a reset of every
    /// resource) and fails after the first was applied said "nothing was
    /// recorded": the second write's certain refusal cleared the flag the
    /// first had left.
    #[tokio::test]
    async fn a_request_whose_first_write_applied_has_sent_its_write_whatever_the_next_comes_to() {
        let work = Work::within(Duration::from_secs(5));
        let done = work
            .run(async {
                own(async { Ok::<(), StoreError>(()) }).await.unwrap();
                own(async { Err::<(), StoreError>(StoreError::Contended("second")) }).await.unwrap_err();
            })
            .await;
        assert!(done.is_ok());
        assert!(work.own_write_sent(), "the first write was applied");
        let refused = Work::within(Duration::from_secs(5));
        let _ = refused.run(own(async { Err::<(), StoreError>(StoreError::Contended("only")) })).await;
        assert!(!refused.own_write_sent(), "refused outright: nothing was recorded");
    }
}
