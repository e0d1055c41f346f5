//! The audit log on the table: entries under `AUDIT#<time>#<salt>`, only
//! ever added, each in the transaction of the change it records.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::attrs::{Item, get_s, key, s};
use super::items;
use super::sdk::{Query, SortKeys};
use super::{Store, StoreError};
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::org::OrgId;

fn to_item(entry: &AuditEntry, org: &OrgId) -> Item {
    let salt = crate::domain::random_u64();
    let sk = format!("AUDIT#{}#{salt:016x}", entry.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    let mut item = key(items::pk(org), sk);
    item.insert("type".into(), s("audit"));
    item.insert("at".into(), s(entry.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    item.insert("actor".into(), s(&entry.actor));
    item.insert("action".into(), s(entry.action.as_str()));
    if let Some(r) = &entry.resource {
        item.insert("resource".into(), s(r));
    }
    if let Some(v) = &entry.before {
        item.insert("before".into(), s(v.to_string()));
    }
    if let Some(v) = &entry.after {
        item.insert("after".into(), s(v.to_string()));
    }
    if let Some(r) = &entry.reason {
        item.insert("reason".into(), s(r));
    }
    item
}

fn from_item(item: &Item) -> Option<AuditEntry> {
    let json = |name| get_s(item, name).and_then(|v| serde_json::from_str(v).ok());
    Some(AuditEntry {
        at: DateTime::parse_from_rfc3339(get_s(item, "at")?).ok()?.with_timezone(&Utc),
        actor: get_s(item, "actor")?.to_string(),
        action: AuditAction::parse(get_s(item, "action")?)?,
        resource: get_s(item, "resource").map(str::to_string),
        before: json("before"),
        after: json("after"),
        reason: get_s(item, "reason").map(str::to_string),
    })
}

impl Store {
    /// The transaction item that adds `entry` to the org's log.
    pub(super) fn audit_put(&self, org: &OrgId, entry: &AuditEntry) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(to_item(entry, org))).build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Audit entries, newest first.
    pub async fn audit(&self, org: &OrgId, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let query = Query {
            newest_first: true,
            limit: Some(limit),
            ..Query::new(items::pk(org), SortKeys::Prefix("AUDIT#".into()))
        };
        let found = query.items(&self.retrying, &self.table).await?;
        Ok(found.iter().filter_map(from_item).collect())
    }
}
