//! What the daily job and the history read need from the table: profile
//! reads, the segment scan, closed periods awaiting their event, daily
//! snapshots.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, TransactWriteItem, Update, WriteRequest};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::items::{self, Item, get_n, get_s, key, n, s};
use super::lease::{Done, EMIT, Lease, Settled, lapse_line};
use super::sdk::{Query, SortKeys, Transacted, transact};
use super::{Store, StoreError};
use crate::domain::notice::InFlight;
use crate::domain::org::{OrgId, OrgProfile, OrgState};
use crate::domain::period::ClosedPeriod;
use crate::domain::usage::{Counter, Snapshot};

/// Snapshots are kept this long.
pub const SNAPSHOT_RETENTION_DAYS: i64 = 400;

/// An org as the daily job's scan found it: its state, when it has a
/// profile, and its closed periods that still have work.
#[derive(Debug, Clone)]
pub struct ScannedOrg {
    pub org: OrgId,
    pub state: Option<OrgState>,
    pub closed: Vec<ClosedPeriod>,
}

/// Where a segment's scan stands: DynamoDB's position, and the items of an
/// org that ran on past the last page (an org's items are contiguous in a
/// segment, and handed on whole). `ScanCursor::default()` starts a segment.
#[derive(Debug, Default)]
pub struct ScanCursor {
    next: Option<HashMap<String, AttributeValue>>,
    carry: Vec<Item>,
}

/// One page of a segment: whole orgs, and where to go on from, if anywhere.
pub struct ScanPage {
    pub orgs: Vec<ScannedOrg>,
    pub next: Option<ScanCursor>,
}

fn is_closed(item: &Item) -> bool {
    get_s(item, "sk").is_some_and(|sk| sk.starts_with("CLOSED#"))
}

/// An org's items, as the job needs them; `None` without an org id.
fn scanned_org(items: &[Item]) -> Result<Option<ScannedOrg>, StoreError> {
    let Some(org) = items.iter().find_map(|i| get_s(i, "orgId")).and_then(OrgId::parse) else {
        return Ok(None);
    };
    let state = super::orgs::state_from_items(items.iter().filter(|i| !is_closed(i)))?;
    let closed = items.iter().filter(|i| is_closed(i)).filter_map(items::closed_from_item).collect();
    Ok(Some(ScannedOrg { org, state, closed }))
}

impl Store {
    /// The org's profile alone (one GetItem).
    pub async fn profile(&self, org: &OrgId) -> Result<Option<OrgProfile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::PROFILE_SK.to_string())))
            .send()
            .await?;
        Ok(out.item().map(items::profile_from_item).transpose()?.map(|(p, _)| p))
    }

    /// One page of one segment of a parallel scan: the orgs whose items it
    /// completes (their `STATE#` items and closed periods with work left).
    pub async fn scan_orgs(
        &self,
        segment: i32,
        total_segments: i32,
        cursor: ScanCursor,
    ) -> Result<ScanPage, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .segment(segment)
            .total_segments(total_segments)
            .filter_expression(
                "begins_with(sk, :state) OR (begins_with(sk, :closed) \
                 AND (attribute_not_exists(emittedAt) OR attribute_exists(owed)))",
            )
            .expression_attribute_values(":state", s(items::STATE_PREFIX))
            .expression_attribute_values(":closed", s("CLOSED#"))
            .set_exclusive_start_key(cursor.next)
            .send()
            .await?;
        let next = out.last_evaluated_key().cloned();
        let mut groups: Vec<Vec<Item>> = Vec::new();
        let mut pending = cursor.carry;
        for item in out.items().iter().cloned() {
            if pending.first().is_some_and(|first| get_s(first, "pk") != get_s(&item, "pk")) {
                groups.push(std::mem::take(&mut pending));
            }
            pending.push(item);
        }
        let next = match next {
            Some(next) => Some(ScanCursor { next: Some(next), carry: pending }),
            None => {
                if !pending.is_empty() {
                    groups.push(pending);
                }
                None
            }
        };
        let orgs = groups.iter().filter_map(|items| scanned_org(items).transpose()).collect::<Result<_, _>>()?;
        Ok(ScanPage { orgs, next })
    }

    /// Closed periods of an org that still have work: their event has not
    /// gone out, or a notice may still be owed.
    pub async fn pending_closed(&self, org: &OrgId) -> Result<Vec<ClosedPeriod>, StoreError> {
        let query = Query {
            filter: Some("attribute_not_exists(emittedAt) OR attribute_exists(owed)"),
            consistent: true,
            ..Query::new(items::pk(org), SortKeys::Prefix("CLOSED#".into()))
        };
        Ok(query.items(&self.client, &self.table).await?.iter().filter_map(items::closed_from_item).collect())
    }

    /// Claims the period-close event of a group of closed-period records
    /// (one period, all its resources), all or none.
    pub async fn claim_closed(
        &self,
        org: &OrgId,
        group: &[ClosedPeriod],
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let lease = Lease::from_now(now);
        let condition = format!(
            "attribute_not_exists(emittedAt) AND (attribute_not_exists({lease}) \
             OR ({lease} < :now AND attribute_not_exists({sending})))",
            lease = EMIT.lease,
            sending = EMIT.sending
        );
        let claimed = self
            .closed_group(
                org,
                group,
                "period-close claim",
                "SET emitLease = :lease",
                &condition,
                vec![(":lease", n(lease.0)), (":now", lapse_line(now))],
            )
            .await?;
        Ok(claimed.then_some(lease))
    }

    /// Records that the event is about to be published; `false` if the
    /// claim is no longer ours.
    pub async fn closed_sending(&self, org: &OrgId, group: &[ClosedPeriod], lease: Lease) -> Result<bool, StoreError> {
        let update = format!("SET {} = :lease", EMIT.sending);
        let condition = format!("{} = :lease", EMIT.lease);
        self.closed_group(org, group, "period-close sending", &update, &condition, vec![(":lease", n(lease.0))]).await
    }

    /// Marks the group's event emitted, or (`emitted: false`) releases the
    /// claim after a failed publish; only while the claim is ours.
    pub async fn finish_closed(
        &self,
        org: &OrgId,
        group: &[ClosedPeriod],
        lease: Lease,
        emitted: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let condition = format!("{} = :lease", EMIT.lease);
        let mut values = vec![(":lease", n(lease.0))];
        let update = if emitted {
            values.push((":at", s(crate::domain::rfc3339(now))));
            format!("SET emittedAt = :at REMOVE {}", EMIT.removal())
        } else {
            format!("REMOVE {}", EMIT.removal())
        };
        self.closed_group(org, group, "period-close mark", &update, &condition, values).await
    }

    /// Settles a lapsed period-close claim found on one record.
    pub async fn settle_closed_event(
        &self,
        org: &OrgId,
        record: &ClosedPeriod,
        claim: InFlight,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let key = key(items::pk(org), items::closed_sk(&record.resource, record.period));
        self.lease_settle(key, EMIT, claim, now, Done::set_time("SET emittedAt = :at", now)).await
    }

    /// One update on every record of a group, in one transaction.
    async fn closed_group(
        &self,
        org: &OrgId,
        group: &[ClosedPeriod],
        operation: &'static str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut writes = Vec::with_capacity(group.len());
        for closed in group {
            let sk = items::closed_sk(&closed.resource, closed.period);
            let mut write = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), sk)))
                .update_expression(update)
                .condition_expression(condition);
            for (name, value) in &values {
                write = write.expression_attribute_values(*name, value.clone());
            }
            writes.push(TransactWriteItem::builder().update(write.build()?).build());
        }
        Ok(matches!(transact(&self.client, operation, writes).await?, Transacted::Committed))
    }

    /// Records the day's usage of every resource (one BatchWriteItem for
    /// up to 25 resources; a later run the same day overwrites).
    pub async fn put_snapshots(
        &self,
        org: &OrgId,
        counters: &[Counter],
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let ttl = (now + Duration::days(SNAPSHOT_RETENTION_DAYS)).timestamp();
        let mut requests = Vec::new();
        for c in counters {
            let mut item = key(items::pk(org), format!("SNAP#{}#{day}", c.resource));
            item.insert("type".into(), s("snapshot"));
            item.insert("date".into(), s(day.to_string()));
            item.insert("used".into(), n(c.used));
            if let Some(l) = c.limit {
                item.insert("lim".into(), n(l));
            }
            item.insert("ttl".into(), n(ttl));
            let put = PutRequest::builder().set_item(Some(item)).build()?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let written = requests.len();
        for chunk in requests.chunks(25) {
            let mut pending = HashMap::from([(self.table.clone(), chunk.to_vec())]);
            for attempt in 0..5u32 {
                let out = self.client.batch_write_item().set_request_items(Some(pending.clone())).send().await?;
                match out.unprocessed_items() {
                    Some(left) if left.values().any(|v| !v.is_empty()) => {
                        pending = left.clone();
                        super::sdk::backoff(attempt).await;
                    }
                    _ => {
                        pending.clear();
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Contended("snapshot write"));
            }
        }
        Ok(written)
    }

    /// Daily snapshots of one resource from `from` to `to`, oldest first.
    pub async fn history(
        &self,
        org: &OrgId,
        resource: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let range = SortKeys::Between(format!("SNAP#{resource}#{from}"), format!("SNAP#{resource}#{to}"));
        let found = Query::new(items::pk(org), range).items(&self.client, &self.table).await?;
        Ok(found
            .iter()
            .filter_map(|i| {
                Some(Snapshot { date: get_s(i, "date")?.to_string(), used: get_n(i, "used")?, limit: get_n(i, "lim") })
            })
            .collect())
    }
}
