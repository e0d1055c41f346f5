//! Events that no claim guards, each published at least once by whoever
//! finds it: the outbox of admin changes (`store::outbox`, written with the
//! change), and `GrantExpired`, published by the write that took the grant
//! off its counter.

use chrono::{DateTime, Utc};

use crate::Deps;
use crate::bus::PublishError;
use crate::domain::events::{Event, EventKind, GrantExpired, Pending};
use crate::domain::grant::Expired;
use crate::domain::org::OrgId;
use crate::store::StoreError;
use crate::timeouts::{EXPIRED_GRANTS_BUDGET, OUTBOX_BUDGET, within};

/// Publishes the org's events still in its outbox (`store::outbox`: the
/// events of admin changes, written with them), ten to a `PutEvents`, and
/// takes each off once published; what is left (EventBridge refused, or
/// the time ran out) waits for the next finder. Returns how many went out.
pub async fn publish_outbox(deps: &Deps, org: &OrgId, pending: &[Pending]) -> usize {
    let mut published = 0;
    for batch in pending.chunks(10) {
        let entries: Vec<(EventKind, serde_json::Value)> = batch.iter().map(|p| (p.kind, p.detail.clone())).collect();
        if let Err(err) = deps.events.publish_all(&entries).await {
            tracing::warn!(error = %err, org = %org, "outbox events not published; the next finder will");
            return published;
        }
        published += batch.len();
        for event in batch {
            if let Err(err) = deps.store.published(org, &event.id).await {
                tracing::warn!(error = %err, event = event.id, "published event not taken off the outbox");
            }
        }
    }
    published
}

/// After an admin write: publishes what the org's outbox holds (its own
/// event, and any an earlier request left), within `OUTBOX_BUDGET`.
pub async fn flush_outbox(deps: &Deps, org: &OrgId) {
    let flush = async {
        let pending = deps.store.outbox(org).await?;
        Ok::<usize, StoreError>(publish_outbox(deps, org, &pending).await)
    };
    match within(OUTBOX_BUDGET, flush).await {
        Some(Ok(_)) => {}
        Some(Err(err)) => tracing::warn!(error = %err, org = %org, "outbox not read; the next finder will publish it"),
        None => tracing::warn!(org = %org, "outbox not flushed in time; the next finder will publish it"),
    }
}

/// Publishes `GrantExpired` for grants a write took off its counter: only
/// the write that took a grant off reports it, so at most once. Ten to a
/// `PutEvents`, all within `EXPIRED_GRANTS_BUDGET`.
pub async fn grants_expired(deps: &Deps, org: &OrgId, expired: &[Expired], now: DateTime<Utc>) {
    if expired.is_empty() {
        return;
    }
    let events: Vec<(EventKind, serde_json::Value)> =
        expired.iter().map(|e| GrantExpired::new(org, e, now).entry()).collect();
    let publish = async {
        for batch in events.chunks(10) {
            deps.events.publish_all(batch).await?;
        }
        Ok::<(), PublishError>(())
    };
    match within(EXPIRED_GRANTS_BUDGET, publish).await {
        Some(Ok(())) => {}
        Some(Err(err)) => tracing::warn!(error = %err, "GrantExpired not published"),
        None => tracing::warn!(grants = expired.len(), "GrantExpired not published within its budget"),
    }
}
