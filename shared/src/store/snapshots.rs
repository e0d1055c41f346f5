//! Daily snapshots: one item per org and day (`SNAP#<YYYY-MM-DD>`) holding
//! every resource's count and limit, written by the daily job in batches of
//! [`SNAPSHOT_BATCH`] orgs, kept [`SNAPSHOT_RETENTION_DAYS`] by TTL. The history read takes
//! one resource's figures out of a range of days.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::attrs::{Item, get_s, key, n, s};
use super::items;
use super::sdk::{Query, SortKeys, backoff};
use super::{Store, StoreError};
use crate::domain::org::OrgId;
use crate::domain::usage::{Counter, Snapshot};

/// Snapshots are kept this long.
pub const SNAPSHOT_RETENTION_DAYS: i64 = 400;

/// Orgs per snapshot write: DynamoDB's most items per `BatchWriteItem`.
pub const SNAPSHOT_BATCH: usize = 25;

fn snapshot_sk(day: NaiveDate) -> String {
    format!("SNAP#{day}")
}

fn snapshot_item(org: &OrgId, counters: &[Counter], day: NaiveDate, ttl: i64) -> Item {
    let mut item = key(items::pk(org), snapshot_sk(day));
    item.insert("type".into(), s("snapshot"));
    item.insert("date".into(), s(day.to_string()));
    let used = counters.iter().map(|c| (c.resource.clone(), n(c.used))).collect();
    item.insert("used".into(), AttributeValue::M(used));
    let limits: HashMap<String, AttributeValue> =
        counters.iter().filter_map(|c| Some((c.resource.clone(), n(c.limit?)))).collect();
    item.insert("lim".into(), AttributeValue::M(limits));
    item.insert("ttl".into(), n(ttl));
    item
}

impl Store {
    /// Records the day's counts of up to [`SNAPSHOT_BATCH`] orgs' resources
    /// in one `BatchWriteItem`, one item per org; a later run the same day
    /// overwrites.
    pub async fn put_snapshots(
        &self,
        orgs: &[(OrgId, Vec<Counter>)],
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ttl = (now + Duration::days(SNAPSHOT_RETENTION_DAYS)).timestamp();
        let requests = orgs
            .iter()
            .map(|(org, counters)| {
                let put = PutRequest::builder().set_item(Some(snapshot_item(org, counters, day, ttl))).build()?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    /// One `BatchWriteItem`, with what DynamoDB left unprocessed sent again.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut pending = HashMap::from([(self.table.clone(), requests)]);
        for attempt in 0..5u32 {
            let out = self.retrying.batch_write_item().set_request_items(Some(pending)).send().await?;
            match out.unprocessed_items {
                Some(left) if left.values().any(|v| !v.is_empty()) => {
                    pending = left;
                    backoff(attempt).await;
                }
                _ => return Ok(()),
            }
        }
        Err(StoreError::Contended("snapshot write"))
    }

    /// Daily snapshots of one resource from `from` to `to`, oldest first.
    pub async fn history(
        &self,
        org: &OrgId,
        resource: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let query = Query {
            projection: Some(("#d, used.#r, lim.#r", vec![("#d", "date".into()), ("#r", resource.into())])),
            ..Query::new(items::pk(org), SortKeys::Between(snapshot_sk(from), snapshot_sk(to)))
        };
        let found = query.items(&self.retrying, &self.table).await?;
        let figure = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::M(map)) => map.get(resource).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()),
            _ => None,
        };
        Ok(found
            .iter()
            .filter_map(|i| {
                Some(Snapshot {
                    date: get_s(i, "date")?.to_string(),
                    used: figure(i, "used")?,
                    limit: figure(i, "lim"),
                })
            })
            .collect())
    }
}
