//! What the daily job needs from the table: the orgs to visit, closed
//! periods with work left, and the record of a run that goes on in another
//! invocation.
//!
//! The orgs come from `job`, a sparse index (keys only) of the items that
//! carry `jobOrg`: every profile, and each closed-period record until its
//! event is out and it owes no notice. A parallel scan of it reads about
//! one small entry per org, whatever history the table holds; the job then
//! reads each org's state with one consistent `Query`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::claim::{EMIT, THRESHOLD};
use super::items::{self, JOB_INDEX, JOB_ORG};
use super::sdk::get_consistent;
use super::sdk::{Query, SortKeys, applied};
use super::{Store, StoreError};
use crate::domain::org::OrgId;
use crate::domain::period::ClosedPeriod;

/// How long the record of a continued run is kept.
const RUN_RETENTION_DAYS: i64 = 7;

/// An org as the index lists it.
#[derive(Debug, Clone)]
pub struct OrgEntry {
    pub org: OrgId,
    /// Sort keys of the closed-period records the index still lists.
    closed: Vec<String>,
    /// The org's last index entry: where its segment goes on after it.
    last: Item,
    /// An org an earlier part of the run failed, taken up again without its
    /// index entries: its closed periods are read from the table.
    recheck: bool,
}

impl OrgEntry {
    /// Where the scan goes on after this org (its entries are contiguous).
    pub fn after(&self) -> ScanCursor {
        ScanCursor { next: Some(self.last.clone()), carry: Vec::new() }
    }

    /// Whether the index lists closed periods of this org (work may be left
    /// on them, or they are settled and not yet taken out of the index);
    /// always for an org taken up again.
    pub fn lists_closed(&self) -> bool {
        !self.closed.is_empty() || self.recheck
    }

    /// An org that failed in an earlier part of the run, to be done again.
    pub fn to_retry(org: OrgId) -> OrgEntry {
        OrgEntry { org, closed: Vec::new(), last: Item::new(), recheck: true }
    }
}

/// Where a segment's scan stands: DynamoDB's position, and the entries of
/// an org that ran on past the last page (an org's entries are contiguous
/// in a segment, and handed on whole). `ScanCursor::default()` starts a
/// segment.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScanCursor {
    next: Option<Item>,
    carry: Vec<Item>,
}

/// One page of a segment: whole orgs, and where to go on from, if anywhere.
pub struct ScanPage {
    pub orgs: Vec<OrgEntry>,
    pub next: Option<ScanCursor>,
}

/// Where a list of orgs goes on: the `job` index's position, as an opaque
/// text for a client (`encode`, `decode`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrgCursor(Item);

impl OrgCursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        let mut map = serde_json::Map::new();
        for (name, value) in &self.0 {
            if let Ok(text) = value.as_s() {
                map.insert(name.clone(), text.clone().into());
            }
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::Value::Object(map).to_string())
    }

    /// `None` for anything [`encode`](Self::encode) did not make.
    pub fn decode(text: &str) -> Option<OrgCursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&raw).ok()?;
        let names: Vec<&str> = map.keys().map(String::as_str).collect();
        if names.len() != 3 || !["pk", "sk", JOB_ORG].iter().all(|n| names.contains(n)) {
            return None;
        }
        let pk = map["pk"].as_str()?;
        OrgId::parse(pk.strip_prefix("ORG#")?)?;
        map.iter()
            .map(|(name, value)| Some((name.clone(), s(value.as_str()?))))
            .collect::<Option<Item>>()
            .map(OrgCursor)
    }
}

/// A run of the daily job that goes on in another invocation: the `now` it
/// started with, the part that comes next, where each unfinished segment
/// stands, whether that part was announced (its `DailyJobContinued` is out)
/// and whether the run has finished.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    pub id: String,
    pub part: u32,
    pub now: DateTime<Utc>,
    pub cursors: BTreeMap<i32, ScanCursor>,
    pub announced: bool,
    pub done: bool,
    /// Orgs that failed in earlier parts: the last part does them again.
    pub retry: Vec<OrgId>,
}

/// Most failed orgs a run carries from part to part (each id is at most 64
/// bytes; a record stays far below DynamoDB's 400 KB). Past it, a part
/// hands over the first ones and fails its invocation (its alarm fires);
/// the rest wait for the next day's run.
pub const MAX_RETRY_CARRIED: usize = 1000;

/// An org's index entries, in scan order; `None` without a profile (an org
/// whose profile is gone has nothing for the job to do).
fn org_entry(entries: &[Item]) -> Option<OrgEntry> {
    let org = entries.first().and_then(|e| get_s(e, JOB_ORG)).and_then(OrgId::parse)?;
    let sks = entries.iter().filter_map(|e| get_s(e, "sk"));
    let (mut profile, mut closed) = (false, Vec::new());
    for sk in sks {
        match sk {
            items::PROFILE_SK => profile = true,
            _ if sk.starts_with(items::CLOSED_PREFIX) => closed.push(sk.to_string()),
            _ => {}
        }
    }
    let last = entries.last()?.clone();
    profile.then_some(OrgEntry { org, closed, last, recheck: false })
}

fn cursor_to_value(cursor: &ScanCursor) -> AttributeValue {
    let mut map = HashMap::new();
    if let Some(next) = &cursor.next {
        map.insert("next".to_string(), AttributeValue::M(next.clone()));
    }
    map.insert("carry".to_string(), AttributeValue::L(cursor.carry.iter().cloned().map(AttributeValue::M).collect()));
    AttributeValue::M(map)
}

fn cursor_from_value(value: &AttributeValue) -> Option<ScanCursor> {
    let map = value.as_m().ok()?;
    let next = map.get("next").and_then(|v| v.as_m().ok()).cloned();
    let carry = map.get("carry")?.as_l().ok()?.iter().map(|v| v.as_m().ok().cloned()).collect::<Option<_>>()?;
    Some(ScanCursor { next, carry })
}

fn run_key(id: &str) -> Item {
    key(format!("JOB#{id}"), "RUN".to_string())
}

impl Store {
    /// One page (at most `page_size` index entries) of one segment of the
    /// index scan: the orgs whose entries it completes.
    pub async fn scan_orgs(
        &self,
        segment: i32,
        total_segments: i32,
        cursor: ScanCursor,
        page_size: i32,
    ) -> Result<ScanPage, StoreError> {
        let out = self
            .retrying
            .scan()
            .table_name(&self.table)
            .index_name(JOB_INDEX)
            .segment(segment)
            .total_segments(total_segments)
            .limit(page_size)
            .set_exclusive_start_key(cursor.next)
            .send()
            .await?;
        let next = out.last_evaluated_key.filter(|k| !k.is_empty());
        let mut groups: Vec<Vec<Item>> = Vec::new();
        let mut pending = cursor.carry;
        for entry in out.items.unwrap_or_default() {
            if pending.first().is_some_and(|first| get_s(first, JOB_ORG) != get_s(&entry, JOB_ORG)) {
                groups.push(std::mem::take(&mut pending));
            }
            pending.push(entry);
        }
        let next = match next {
            Some(next) => Some(ScanCursor { next: Some(next), carry: pending }),
            None => {
                groups.push(pending);
                None
            }
        };
        Ok(ScanPage { orgs: groups.iter().filter_map(|g| org_entry(g)).collect(), next })
    }

    /// Up to `limit` orgs, in the `job` index's order, from `after` (a
    /// cursor this returned; `None` from the start), and where the next
    /// page starts (`None` at the end). Reads the index only: one small
    /// entry per org, and one per closed period with work left.
    pub async fn list_orgs(
        &self,
        limit: usize,
        after: Option<OrgCursor>,
    ) -> Result<(Vec<OrgId>, Option<OrgCursor>), StoreError> {
        let mut orgs = Vec::new();
        let mut start = after.map(|c| c.0);
        loop {
            // Never more entries than orgs still wanted: the page ends on an
            // entry read, so the next starts right after it.
            let want = i32::try_from(limit - orgs.len()).unwrap_or(i32::MAX);
            let out = self
                .retrying
                .scan()
                .table_name(&self.table)
                .index_name(JOB_INDEX)
                .limit(want)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for entry in out.items.unwrap_or_default() {
                if get_s(&entry, "sk") == Some(items::PROFILE_SK)
                    && let Some(org) = get_s(&entry, JOB_ORG).and_then(OrgId::parse)
                {
                    orgs.push(org);
                }
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || orgs.len() >= limit {
                return Ok((orgs, start.map(OrgCursor)));
            }
        }
    }

    /// Closed periods of an org that still have work: their event has not
    /// gone out, or a notice may still be owed.
    pub async fn pending_closed(&self, org: &OrgId) -> Result<Vec<ClosedPeriod>, StoreError> {
        let query = Query {
            filter: Some("attribute_not_exists(emittedAt) OR attribute_exists(owed)"),
            consistent: true,
            ..Query::new(items::pk(org), SortKeys::Prefix(items::CLOSED_PREFIX.into()))
        };
        Ok(query.items(&self.retrying, &self.table).await?.iter().filter_map(items::closed_from_item).collect())
    }

    /// Takes out of the index the closed records it lists for `entry` that
    /// are not among `pending` (read after the index): settled ones, each
    /// on condition that it is. Returns how many left the index.
    pub async fn forget_settled(&self, entry: &OrgEntry, pending: &[ClosedPeriod]) -> Result<usize, StoreError> {
        let open: Vec<String> = pending.iter().map(|c| items::closed_sk(&c.resource, c.period)).collect();
        let mut forgotten = 0;
        for sk in entry.closed.iter().filter(|sk| !open.contains(sk)) {
            let result = self
                .retrying
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(&entry.org), sk.clone())))
                .update_expression(format!("REMOVE {JOB_ORG}"))
                .condition_expression(format!(
                    "attribute_exists(emittedAt) AND attribute_not_exists(owed) \
                     AND attribute_not_exists({}) AND attribute_not_exists({})",
                    EMIT.lease, THRESHOLD.lease
                ))
                .send()
                .await;
            forgotten += usize::from(applied(result)?);
        }
        Ok(forgotten)
    }

    /// The record of a continued run (a consistent read).
    pub async fn job_run(&self, id: &str) -> Result<Option<JobRun>, StoreError> {
        let Some(item) = get_consistent(&self.retrying, &self.table, run_key(id)).await? else { return Ok(None) };
        let malformed = || StoreError::from(super::attrs::malformed("job run"));
        let cursors = match item.get("cursors") {
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(segment, v)| Some((segment.parse().ok()?, cursor_from_value(v)?)))
                .collect::<Option<_>>()
                .ok_or_else(malformed)?,
            _ => BTreeMap::new(),
        };
        Ok(Some(JobRun {
            id: id.to_string(),
            part: get_n(&item, "part").and_then(|p| u32::try_from(p).ok()).ok_or_else(malformed)?,
            now: get_s(&item, "now").and_then(|t| t.parse().ok()).ok_or_else(malformed)?,
            cursors,
            announced: item.contains_key("announced"),
            done: item.contains_key("done"),
            retry: match item.get("retry") {
                Some(AttributeValue::L(ids)) => ids
                    .iter()
                    .map(|v| v.as_s().ok().and_then(|s| OrgId::parse(s)))
                    .collect::<Option<_>>()
                    .ok_or_else(malformed)?,
                _ => Vec::new(),
            },
        }))
    }

    /// Hands a run over to its part `run.part`: records where its segments
    /// stand, on condition that the run is still at the part before (absent,
    /// for part 2). `false` when another invocation of that part handed
    /// over, or finished, first. The record names this hand-over (`by`), so
    /// a put whose answer was lost and that is sent again recognises its own
    /// record instead of reading it as another invocation's.
    pub async fn hand_over(&self, run: &JobRun, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let by = crate::domain::random_hex(12);
        let mut item = run_key(&run.id);
        item.insert("by".into(), s(&by));
        item.insert("type".into(), s("job-run"));
        item.insert("part".into(), n(i64::from(run.part)));
        item.insert("now".into(), s(run.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
        let cursors = run.cursors.iter().map(|(segment, c)| (segment.to_string(), cursor_to_value(c))).collect();
        item.insert("cursors".into(), AttributeValue::M(cursors));
        if !run.retry.is_empty() {
            item.insert("retry".into(), AttributeValue::L(run.retry.iter().map(|o| s(o.as_str())).collect()));
        }
        item.insert("ttl".into(), n((now + Duration::days(RUN_RETENTION_DAYS)).timestamp()));
        let mut put = self
            .retrying
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        put = if run.part <= 2 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("part = :before AND attribute_not_exists(done)")
                .expression_attribute_values(":before", n(i64::from(run.part - 1)))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) => {
                    Ok(e.item().and_then(|old| get_s(old, "by")) == Some(by.as_str()))
                }
                _ => Err(err.into()),
            },
        }
    }

    /// Records that part `part` of run `id` was announced: a retry of the
    /// part before then leaves it to the invocation the announcement starts.
    pub async fn mark_announced(&self, id: &str, part: u32) -> Result<bool, StoreError> {
        let update =
            self.run_update(id, part).update_expression("SET announced = :one").condition_expression("part = :part");
        applied(update.send().await)
    }

    /// Marks a continued run finished by its part `part`; `false` when
    /// another invocation moved it on first.
    pub async fn finish_run(&self, id: &str, part: u32) -> Result<bool, StoreError> {
        let update = self
            .run_update(id, part)
            .update_expression("SET done = :one REMOVE cursors")
            .condition_expression("part = :part AND attribute_not_exists(done)");
        applied(update.send().await)
    }

    /// A change to run `id`'s record, with `:part` (the part it must be at)
    /// and `:one` (a flag's value) bound.
    fn run_update(&self, id: &str, part: u32) -> UpdateItemFluentBuilder {
        self.once
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(id)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":part", n(i64::from(part)))
    }
}
