//! The scan: one segment of the job's index a page at a time (the next
//! page read while one is worked on), each page's orgs a few at a time,
//! their snapshots written in batches as they are done.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use quota_shared::Deps;
use quota_shared::domain::org::OrgId;
use quota_shared::domain::usage::Counter;
use quota_shared::store::StoreError;
use quota_shared::store::job::{OrgEntry, ScanCursor};
use quota_shared::store::snapshots::SNAPSHOT_BATCH;

use crate::bounds::{ORG_CONCURRENCY, Options, SEGMENTS, SNAPSHOT_WRITES};
use crate::org::{OrgOutcome, process_org};
use crate::summary::Summary;

/// Works through one segment from `cursor`, reading each next page while
/// the current one is worked on. `Ok(Some(cursor))` when the budget ran out
/// first: where the segment stands (after the last org done, when a page
/// was cut short). `Err` carries where the segment stood when a page could
/// not be read.
pub(crate) async fn scan_segment(
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
pub(crate) async fn process_page(
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
pub(crate) async fn record_batch(
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
