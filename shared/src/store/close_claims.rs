//! The period-close event (`UsagePeriodClosed`) on the closed-period
//! records: one claim for all the records of a period (one per resource),
//! the `sending` mark, and the emitted mark or the release, each one
//! transaction over the group, under the lease protocol of `claim`.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::attrs::{key, n, placeholders, s};
use super::claim::{Done, EMIT, Lease, Settled, lapse_line};
use super::items::{self, JOB_ORG};
use super::sdk::{Transacted, transact};
use super::{Store, StoreError};
use crate::domain::notice::InFlight;
use crate::domain::org::OrgId;
use crate::domain::period::ClosedPeriod;

/// The removal that takes a closed record out of the job's index.
const LEAVE_INDEX: &str = ", jobOrg";

impl Store {
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
                |_| "SET emitLease = :lease".to_string(),
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
        let values = vec![(":lease", n(lease.0))];
        self.closed_group(org, group, "period-close sending", |_| update.clone(), &condition, values).await
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
        if emitted {
            values.push((":at", s(crate::domain::rfc3339(now))));
        }
        // A record whose event is out and that owes no notice has no work
        // left: it leaves the job's index. (`owed` only ever goes away, so
        // a record read without it has none now.)
        let update = |record: &ClosedPeriod| match (emitted, record.owed) {
            (true, false) => format!("SET emittedAt = :at REMOVE {}, {JOB_ORG}", EMIT.removal()),
            (true, true) => format!("SET emittedAt = :at REMOVE {}", EMIT.removal()),
            (false, _) => format!("REMOVE {}", EMIT.removal()),
        };
        self.closed_group(org, group, "period-close mark", update, &condition, values).await
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
        let mut done = Done::set_time("SET emittedAt = :at", now);
        if !record.owed {
            done.also_remove = LEAVE_INDEX;
        }
        self.lease_settle(key, EMIT, claim, now, done).await
    }

    /// One update on every record of a group, in one transaction.
    async fn closed_group(
        &self,
        org: &OrgId,
        group: &[ClosedPeriod],
        operation: &'static str,
        update: impl Fn(&ClosedPeriod) -> String,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut writes = Vec::with_capacity(group.len());
        for closed in group {
            let sk = items::closed_sk(&closed.resource, closed.period);
            let write = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), sk)))
                .update_expression(update(closed))
                .condition_expression(condition)
                .set_expression_attribute_values(placeholders(values.iter().cloned()));
            writes.push(TransactWriteItem::builder().update(write.build()?).build());
        }
        Ok(matches!(transact(&self.once, operation, writes).await?, Transacted::Committed))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaving_the_index_removes_its_key() {
        assert_eq!(super::LEAVE_INDEX, format!(", {}", super::JOB_ORG));
    }
}
