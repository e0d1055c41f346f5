//! The table's items and their conversion to and from domain types.
//!
//! Single table, keys `pk` / `sk` (strings):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | org profile | `ORG#<orgId>` | `STATE#PROFILE` |
//! | counter | `ORG#<orgId>` | `STATE#USAGE#<resource>` |
//! | idempotency record (TTL) | `ORG#<orgId>` | `IDEM#<resource>#<key>` |
//! | audit entry | `ORG#<orgId>` | `AUDIT#<time>#<id>` |
//! | a grant's reason and author (TTL) | `ORG#<orgId>` | `GRANT#<grantId>` |
//! | a reservation's outcome (TTL) | `ORG#<orgId>` | `RES#<nonce>` |
//! | closed period | `ORG#<orgId>` | `CLOSED#<resource>#<start>#<end>` |
//! | daily snapshot (TTL) | `ORG#<orgId>` | `SNAP#<YYYY-MM-DD>` |
//! | a continued job run (TTL) | `JOB#<runId>` | `RUN` |
//!
//! Profiles, and closed-period records until they are settled, carry
//! `jobOrg` (the org id): the key of `job`, a sparse keys-only index the
//! daily job scans instead of the table.
//!
//! `Query pk = ORG#x AND begins_with(sk, "STATE#")` returns an org's profile
//! and every counter in one request.
//!
//! A counter carries everything a consume needs to decide alone: the
//! effective limit `lim` (absent when unlimited; the plan's limit plus the
//! `grants` the counter keeps, `gexp` the first of their expiries), `held`
//! (the units its open reservations' `holds` keep; `hv` moves with every
//! change to them), `rem`
//! (= `lim - used - held`, maintained by every write), `enf`, the trial end `trialEnd` while the org
//! is on a plan with a trial, and the period bounds `pstart`/`pend` (epoch
//! seconds) for `period` resources. A plan change rewrites them on every
//! counter in the same transaction as the profile.
//!
//! Over 400 lines for a reason: every item's shape in one place, beside
//! the key table above, so that what a write sets and what a read expects
//! are read together.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::catalogue::{Enforcement, ResourceKind};
use crate::domain::grant::Grant;
use crate::domain::notice::threshold_owed;
use crate::domain::org::{Contacts, Locale, OrgId, OrgProfile};
use crate::domain::period::{ClosedPeriod, Period};
use crate::domain::reservation::Hold;
use crate::domain::usage::Counter;

use super::attrs::{Item, Malformed, UpdateExpr, get_n, get_rfc3339, get_s, get_time, key, n, need, placeholders, s};

pub const PROFILE_SK: &str = "STATE#PROFILE";
pub const STATE_PREFIX: &str = "STATE#";
pub const CLOSED_PREFIX: &str = "CLOSED#";
/// The daily job's index, and its key.
pub const JOB_INDEX: &str = "job";
pub const JOB_ORG: &str = "jobOrg";
const COUNTER_PREFIX: &str = "STATE#USAGE#";

pub fn pk(org: &OrgId) -> String {
    format!("ORG#{org}")
}

pub fn counter_sk(resource: &str) -> String {
    format!("{COUNTER_PREFIX}{resource}")
}

/// The record of a closed period: one per resource and period.
pub fn closed_sk(resource: &str, period: Period) -> String {
    format!("{CLOSED_PREFIX}{resource}#{}#{}", period.start.timestamp(), period.end.timestamp())
}

pub fn outcome_sk(nonce: &str) -> String {
    format!("RES#{nonce}")
}

pub fn idempotency_sk(resource: &str, key: &str) -> String {
    format!("IDEM#{resource}#{key}")
}

pub fn is_counter(item: &Item) -> bool {
    get_s(item, "sk").is_some_and(|sk| sk.starts_with(COUNTER_PREFIX))
}

pub fn is_profile(item: &Item) -> bool {
    get_s(item, "sk") == Some(PROFILE_SK)
}

// ---- profile ---------------------------------------------------------------

pub fn profile_to_item(p: &OrgProfile, version: i64) -> Item {
    let mut item = key(pk(&p.org_id), PROFILE_SK.to_string());
    item.insert("type".into(), s("org"));
    item.insert("orgId".into(), s(p.org_id.as_str()));
    item.insert(JOB_ORG.into(), s(p.org_id.as_str()));
    item.insert("plan".into(), s(&p.plan));
    item.insert("locale".into(), s(p.locale.as_str()));
    item.insert("tz".into(), s(p.timezone.name()));
    item.insert("anchor".into(), n(i64::from(p.anchor_day)));
    item.insert("createdAt".into(), s(crate::domain::rfc3339(p.created_at)));
    item.insert("updatedAt".into(), s(crate::domain::rfc3339(p.updated_at)));
    item.insert("version".into(), n(version));
    if let Some(t) = p.trial_ends_at {
        item.insert("trialEndsAt".into(), s(crate::domain::rfc3339(t)));
    }
    if !p.limits.is_empty() {
        let limits = p.limits.iter().map(|(r, l)| (r.clone(), n(*l))).collect();
        item.insert("limits".into(), AttributeValue::M(limits));
    }
    if !p.features.is_empty() {
        let features = p.features.iter().map(|(f, v)| (f.clone(), AttributeValue::Bool(*v))).collect();
        item.insert("features".into(), AttributeValue::M(features));
    }
    let mut contacts = HashMap::new();
    if let Some(o) = &p.contacts.owner {
        contacts.insert("owner".to_string(), s(o));
    }
    if let Some(b) = &p.contacts.billing {
        contacts.insert("billing".to_string(), s(b));
    }
    if !p.contacts.admins.is_empty() {
        let admins = p.contacts.admins.iter().map(s).collect();
        contacts.insert("admins".to_string(), AttributeValue::L(admins));
    }
    item.insert("contacts".into(), AttributeValue::M(contacts));
    item
}

/// The update that writes a profile item's own fields (`item`, as
/// [`profile_to_item`] builds it) over the stored one, on condition that it
/// is still at `version`. Optional fields left out are removed; the trial
/// notice's attributes are kept unless `rearm_trial_notice`.
pub fn profile_update(
    table: &str,
    item: Item,
    version: i64,
    rearm_trial_notice: bool,
) -> Result<aws_sdk_dynamodb::types::Update, aws_sdk_dynamodb::error::BuildError> {
    let update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .set_key(Some(key(
            get_s(&item, "pk").unwrap_or_default().to_string(),
            get_s(&item, "sk").unwrap_or_default().to_string(),
        )))
        .condition_expression("#version = :expected");
    let mut fields: Vec<(String, AttributeValue)> =
        item.into_iter().filter(|(name, _)| name != "pk" && name != "sk").collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let remove =
        ["trialEndsAt", "limits", "features"].into_iter().filter(|f| !fields.iter().any(|(name, _)| name == f));
    let mut expression = UpdateExpr { remove: remove.map(str::to_string).collect(), ..Default::default() };
    if rearm_trial_notice {
        expression.remove.extend(["trialNotifiedAt", "trialNoticeLease", "trialNoticeSending"].map(str::to_string));
    }
    let mut names = vec![("#version".to_string(), "version".to_string())];
    let mut values = vec![(":expected".to_string(), n(version))];
    for (i, (name, value)) in fields.into_iter().enumerate() {
        expression.set.push(format!("#f{i} = :f{i}"));
        names.push((format!("#f{i}"), name));
        values.push((format!(":f{i}"), value));
    }
    update
        .update_expression(expression.text())
        .set_expression_attribute_names(placeholders(names))
        .set_expression_attribute_values(placeholders(values))
        .build()
}

pub fn profile_from_item(item: &Item) -> Result<(OrgProfile, i64), Malformed> {
    const W: &str = "profile";
    let org_id = need(get_s(item, "orgId").and_then(OrgId::parse), W, "orgId")?;
    let limits = match item.get("limits").and_then(|v| v.as_m().ok()) {
        Some(m) => m
            .iter()
            .map(|(r, v)| {
                let l = v.as_n().ok().and_then(|l| l.parse().ok());
                need(l, W, "limits").map(|l| (r.clone(), l))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        None => BTreeMap::new(),
    };
    let features = match item.get("features").and_then(|v| v.as_m().ok()) {
        Some(m) => m
            .iter()
            .map(|(f, v)| need(v.as_bool().ok().copied(), W, "features").map(|v| (f.clone(), v)))
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        None => BTreeMap::new(),
    };
    let contacts = match item.get("contacts").and_then(|v| v.as_m().ok()) {
        Some(m) => Contacts {
            owner: m.get("owner").and_then(|v| v.as_s().ok()).cloned(),
            billing: m.get("billing").and_then(|v| v.as_s().ok()).cloned(),
            admins: m
                .get("admins")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|a| a.as_s().ok().cloned()).collect())
                .unwrap_or_default(),
        },
        None => Contacts::default(),
    };
    let profile = OrgProfile {
        org_id,
        plan: need(get_s(item, "plan"), W, "plan")?.to_string(),
        limits,
        features,
        contacts,
        locale: get_s(item, "locale").and_then(Locale::parse).unwrap_or_default(),
        timezone: need(get_s(item, "tz").and_then(|t| t.parse::<Tz>().ok()), W, "tz")?,
        anchor_day: need(get_n(item, "anchor").and_then(|a| u32::try_from(a).ok()), W, "anchor")?,
        trial_ends_at: get_rfc3339(item, "trialEndsAt"),
        created_at: need(get_rfc3339(item, "createdAt"), W, "createdAt")?,
        updated_at: need(get_rfc3339(item, "updatedAt"), W, "updatedAt")?,
    };
    Ok((profile, get_n(item, "version").unwrap_or(0)))
}

// ---- counter ---------------------------------------------------------------

/// A counter as an item: what a consume's condition reads (`lim`, `rem`,
/// `enf`, `trialEnd`, `pend`) beside what reads show.
pub fn counter_to_item(c: &Counter) -> Item {
    let mut item = key(pk(&c.org_id), counter_sk(&c.resource));
    item.insert("type".into(), s("counter"));
    item.insert("orgId".into(), s(c.org_id.as_str()));
    item.insert("resource".into(), s(&c.resource));
    item.insert("kind".into(), s(kind_str(c.kind)));
    item.insert("used".into(), n(c.used));
    item.insert("rem".into(), n(c.limit.map_or(0, |l| l - c.used - c.held())));
    item.insert("held".into(), n(c.held()));
    item.insert(HOLDS.into(), AttributeValue::M(c.holds.iter().map(|h| (h.nonce.clone(), hold_value(h))).collect()));
    item.insert(GRANTS.into(), AttributeValue::M(c.grants.iter().map(|g| (g.id.clone(), grant_value(g))).collect()));
    item.insert("gv".into(), n(c.grant_version));
    if let Some(first) = c.grants.iter().map(|g| g.expires_at).min() {
        item.insert("gexp".into(), n(first.timestamp()));
    }
    item.insert("plan".into(), s(&c.plan));
    item.insert("enf".into(), s(c.enforcement.as_str()));
    item.insert("locale".into(), s(c.locale.as_str()));
    item.insert("tz".into(), s(c.timezone.name()));
    item.insert("anchor".into(), n(i64::from(c.anchor_day)));
    if let Some(l) = c.limit {
        item.insert("lim".into(), n(l));
    }
    if let Some(t) = c.trial_ends_at {
        item.insert("trialEnd".into(), n(t.timestamp()));
    }
    if let Some(p) = c.period {
        item.insert("pstart".into(), n(p.start.timestamp()));
        item.insert("pend".into(), n(p.end.timestamp()));
    }
    item
}

/// The record of a counter's period that has ended: its final figures for
/// billing, and its notice state (`notified`, `ntop`, a lease), flagged
/// `owed` while a notice is still due or in flight.
pub fn closed_item(org: &OrgId, counter: &Counter, period: Period, now: DateTime<Utc>) -> Item {
    let mut item = key(pk(org), closed_sk(&counter.resource, period));
    item.insert("type".into(), s("closed-period"));
    item.insert("orgId".into(), s(org.as_str()));
    item.insert(JOB_ORG.into(), s(org.as_str()));
    item.insert("resource".into(), s(&counter.resource));
    item.insert("plan".into(), s(&counter.plan));
    item.insert("start".into(), s(crate::domain::rfc3339(period.start)));
    item.insert("end".into(), s(crate::domain::rfc3339(period.end)));
    item.insert("used".into(), n(counter.used));
    item.insert("enf".into(), s(counter.enforcement.as_str()));
    // Billed on the limit that held through the period's end.
    let limit = counter.limit_through(period.end);
    if let Some(limit) = limit {
        item.insert("lim".into(), n(limit));
    }
    item.insert("overage".into(), n(limit.map_or(0, |l| (counter.used - l).max(0))));
    item.insert("closedAt".into(), s(crate::domain::rfc3339(now)));
    if !counter.notified.is_empty() {
        item.insert("notified".into(), AttributeValue::Ns(counter.notified.iter().map(u32::to_string).collect()));
        item.insert("ntop".into(), n(i64::from(counter.notified.iter().copied().max().unwrap_or(0))));
    }
    if let Some(claim) = counter.notice {
        let attrs = super::claim::THRESHOLD;
        item.insert(attrs.lease.into(), n(claim.until));
        if let (Some(name), Some(t)) = (attrs.threshold, claim.threshold) {
            item.insert(name.into(), n(i64::from(t)));
        }
        if claim.sending {
            item.insert(attrs.sending.into(), n(claim.until));
        }
    }
    let owed = threshold_owed(counter.used, limit, counter.enforcement, &counter.notified).is_some();
    if owed || counter.notice.is_some() {
        item.insert("owed".into(), n(1));
    }
    item
}

/// A closed period's record, read back (`None` when it is not one).
pub fn closed_from_item(item: &Item) -> Option<ClosedPeriod> {
    let time = |name| get_s(item, name).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    let mut notified: Vec<u32> = item
        .get("notified")
        .and_then(|v| v.as_ns().ok())
        .map(|ns| ns.iter().filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_default();
    notified.sort_unstable();
    Some(ClosedPeriod {
        resource: get_s(item, "resource")?.to_string(),
        plan: get_s(item, "plan")?.to_string(),
        period: Period { start: time("start")?, end: time("end")? },
        used: get_n(item, "used")?,
        limit: get_n(item, "lim"),
        overage: get_n(item, "overage")?,
        enforcement: get_s(item, "enf").and_then(Enforcement::parse)?,
        notified,
        owed: item.contains_key("owed"),
        notice: super::claim::THRESHOLD.read(item),
        emitted: item.contains_key("emittedAt"),
        emit: super::claim::EMIT.read(item),
    })
}

/// A counter's map of open reservations' holds, by nonce: `{a, e}`.
pub const HOLDS: &str = "holds";
/// A counter's map of grants, by id: `{a, e}`.
pub const GRANTS: &str = "grants";

pub fn hold_value(h: &Hold) -> AttributeValue {
    AttributeValue::M(HashMap::from([("a".to_string(), n(h.amount)), ("e".to_string(), n(h.expires_at.timestamp()))]))
}

pub fn grant_value(g: &Grant) -> AttributeValue {
    AttributeValue::M(HashMap::from([("a".to_string(), n(g.amount)), ("e".to_string(), n(g.expires_at.timestamp()))]))
}

/// The entries of a map attribute of a counter (`holds`, `grants`), each
/// read by `read` from its key and its own map; absent is empty.
fn entries<T>(item: &Item, name: &'static str, read: impl Fn(&str, &Item) -> Option<T>) -> Result<Vec<T>, Malformed> {
    let Some(map) = item.get(name).and_then(|v| v.as_m().ok()) else {
        return Ok(Vec::new());
    };
    map.iter().map(|(id, v)| need(v.as_m().ok().and_then(|m| read(id, m)), "counter", name)).collect()
}

fn holds_from(item: &Item) -> Result<Vec<Hold>, Malformed> {
    let mut holds = entries(item, HOLDS, |nonce, m| {
        Some(Hold { nonce: nonce.to_string(), amount: get_n(m, "a")?, expires_at: get_time(m, "e")? })
    })?;
    holds.sort_by(|a, b| (a.expires_at, &a.nonce).cmp(&(b.expires_at, &b.nonce)));
    Ok(holds)
}

fn grants_from(item: &Item) -> Result<Vec<Grant>, Malformed> {
    let mut grants = entries(item, GRANTS, |id, m| {
        Some(Grant { id: id.to_string(), amount: get_n(m, "a")?, expires_at: get_time(m, "e")? })
    })?;
    grants.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
    Ok(grants)
}

pub fn kind_str(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Period => "period",
        ResourceKind::Total => "total",
    }
}

pub fn counter_from_item(item: &Item) -> Result<Counter, Malformed> {
    const W: &str = "counter";
    let kind = match get_s(item, "kind") {
        Some("period") => ResourceKind::Period,
        Some("total") => ResourceKind::Total,
        _ => {
            return Err(Malformed { what: W, field: "kind" });
        }
    };
    let period = match (get_time(item, "pstart"), get_time(item, "pend")) {
        (Some(start), Some(end)) => Some(Period { start, end }),
        _ if kind == ResourceKind::Period => {
            return Err(Malformed { what: W, field: "pstart" });
        }
        _ => None,
    };
    let mut notified: Vec<u32> = match item.get("notified").and_then(|v| v.as_ns().ok()) {
        Some(ns) => ns.iter().filter_map(|t| t.parse().ok()).collect(),
        None => Vec::new(),
    };
    notified.sort_unstable();
    Ok(Counter {
        org_id: need(get_s(item, "orgId").and_then(OrgId::parse), W, "orgId")?,
        resource: need(get_s(item, "resource"), W, "resource")?.to_string(),
        kind,
        plan: need(get_s(item, "plan"), W, "plan")?.to_string(),
        used: need(get_n(item, "used"), W, "used")?,
        limit: get_n(item, "lim"),
        enforcement: need(get_s(item, "enf").and_then(Enforcement::parse), W, "enf")?,
        period,
        anchor_day: need(get_n(item, "anchor").and_then(|a| u32::try_from(a).ok()), W, "anchor")?,
        timezone: need(get_s(item, "tz").and_then(|t| t.parse::<Tz>().ok()), W, "tz")?,
        locale: get_s(item, "locale").and_then(Locale::parse).unwrap_or_default(),
        trial_ends_at: get_time(item, "trialEnd"),
        notified,
        notice: super::claim::THRESHOLD.read(item),
        stored_held: get_n(item, "held").unwrap_or(0),
        hold_version: get_n(item, "hv").unwrap_or(0),
        holds: holds_from(item)?,
        grants: grants_from(item)?,
        grant_version: get_n(item, "gv").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalogue::Catalogue;
    use crate::domain::org::{OrgPatch, OrgPatchBody};
    use crate::domain::usage::CounterSettings;

    #[test]
    fn profile_and_counter_round_trip() {
        let now: DateTime<Utc> = "2026-03-15T10:00:00Z".parse().unwrap();
        let c = Catalogue::builtin();
        let body: OrgPatchBody = serde_json::from_str(
            r#"{"plan":"free","limits":{"contacts":3},"locale":"da","timezone":"Europe/Copenhagen",
            "anchorDay":31,"features":{"sso":true,"webhooks":false},"contacts":{"owner":"o@x.dk","admins":["a@x.dk","b@x.dk"]}}"#,
        )
        .unwrap();
        let org = OrgId::parse("acme").unwrap();
        let profile = OrgPatch::parse(body, c).unwrap().apply(&org, None, c, now);
        let (back, version) = profile_from_item(&profile_to_item(&profile, 3)).unwrap();
        assert_eq!(back, profile);
        assert_eq!(version, 3);

        let settings = CounterSettings::of(&profile, "conversations", c).unwrap();
        let fresh = Counter::fresh(&org, "conversations", ResourceKind::Period, &settings, now);
        let counter = counter_from_item(&counter_to_item(&fresh)).unwrap();
        assert_eq!(counter, fresh);
        assert_eq!(counter.used, 0);
        assert_eq!(counter.limit, Some(100));
        assert_eq!(counter.trial_ends_at, profile.trial_ends_at);
        assert_eq!(counter.period, Some(Period::containing(now, 31, "Europe/Copenhagen".parse().unwrap())));
        let contacts = CounterSettings::of(&profile, "contacts", c).unwrap();
        assert_eq!(contacts.limit, Some(3));
    }
}
