//! The events the service publishes, each a type whose fields are its
//! documented `detail` (`docs/events.md`; a test holds the two together).
//! Pure: publishing is `crate::bus`.
//!
//! Over 400 lines for a reason: every event's schema, side by side as
//! `docs/events.md` lists them, so that the contract reads in one place.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalogue::Enforcement;
use super::grant::{Expired, GrantDetails};
use super::org::OrgId;
use super::period::Period;
use super::usage::percentage;

/// The events, by their `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    QuotaThresholdCrossed,
    QuotaExceeded,
    QuotaRecovered,
    QuotaReset,
    PlanChanged,
    TrialExpired,
    UsagePeriodClosed,
    GrantAdded,
    GrantRevoked,
    GrantExpired,
    /// Internal: the daily job hands a run over to its next invocation.
    DailyJobContinued,
}

impl EventKind {
    const ALL: [EventKind; 11] = [
        EventKind::QuotaThresholdCrossed,
        EventKind::QuotaExceeded,
        EventKind::QuotaRecovered,
        EventKind::QuotaReset,
        EventKind::PlanChanged,
        EventKind::TrialExpired,
        EventKind::UsagePeriodClosed,
        EventKind::GrantAdded,
        EventKind::GrantRevoked,
        EventKind::GrantExpired,
        EventKind::DailyJobContinued,
    ];

    /// The kind whose `detail-type` this is.
    pub fn parse(detail_type: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.detail_type() == detail_type)
    }

    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::QuotaThresholdCrossed => "QuotaThresholdCrossed",
            EventKind::QuotaExceeded => "QuotaExceeded",
            EventKind::QuotaRecovered => "QuotaRecovered",
            EventKind::QuotaReset => "QuotaReset",
            EventKind::PlanChanged => "PlanChanged",
            EventKind::TrialExpired => "TrialExpired",
            EventKind::UsagePeriodClosed => "UsagePeriodClosed",
            EventKind::GrantAdded => "GrantAdded",
            EventKind::GrantRevoked => "GrantRevoked",
            EventKind::GrantExpired => "GrantExpired",
            EventKind::DailyJobContinued => "DailyJobContinued",
        }
    }

    /// The event's `source`: the service's own, but a separate one for the
    /// job's hand-over, which subscribers to the service's events never see.
    pub fn source(self) -> &'static str {
        match self {
            EventKind::DailyJobContinued => "quota-service.job",
            _ => "quota-service",
        }
    }
}

/// A new `eventId` for an event of `at`: the time first (microseconds,
/// zero-padded), so an org's pending events sort, and are published, in
/// the order they were made; then 64 random bits.
pub fn new_event_id(at: DateTime<Utc>) -> String {
    format!("evt_{:016x}{}", at.timestamp_micros().max(0), super::random_hex(8))
}

/// An event written with the change it reports, waiting to be published
/// (`store::outbox`). Published at least once: its `eventId` (in its
/// `detail`) is the same on every publication, for subscribers to tell
/// repeats apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: String,
    pub kind: EventKind,
    pub detail: serde_json::Value,
}

impl Pending {
    /// `event`, under the `eventId` its detail carries.
    pub fn of(event: &impl Event) -> Pending {
        let (kind, detail) = event.entry();
        let id = detail["eventId"].as_str().map_or_else(|| new_event_id(Utc::now()), str::to_string);
        Pending { id, kind, detail }
    }
}

/// An event's `detail`, and which event it is.
pub trait Event: Serialize {
    const KIND: EventKind;

    /// The kind and the JSON `detail`, as published.
    fn entry(&self) -> (EventKind, serde_json::Value) {
        (Self::KIND, serde_json::to_value(self).unwrap_or_default())
    }
}

fn time(t: &DateTime<Utc>) -> String {
    super::rfc3339(*t)
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time(t))
}

/// A write took a resource across a notification threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaThresholdCrossed {
    pub org_id: OrgId,
    pub resource: String,
    pub threshold: u32,
    pub used: i64,
    pub limit: i64,
    pub percentage: f64,
    pub enforcement: Enforcement,
    pub plan: String,
    pub period: Option<Period>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for QuotaThresholdCrossed {
    const KIND: EventKind = EventKind::QuotaThresholdCrossed;
}

/// A resource reached 100 % of its limit in a period, for the first time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaExceeded {
    pub org_id: OrgId,
    pub resource: String,
    pub used: i64,
    pub limit: i64,
    pub blocked: bool,
    pub plan: String,
    pub period: Option<Period>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for QuotaExceeded {
    const KIND: EventKind = EventKind::QuotaExceeded;
}

/// What brought a resource back below a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryCause {
    Reset,
    Grant,
    PlanChange,
    NewPeriod,
}

/// Usage is back below a threshold it had reached: the "resolved" half of
/// `QuotaThresholdCrossed` and `QuotaExceeded`, after a reset, a grant, a
/// plan or limit change, or a new period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaRecovered {
    pub event_id: String,
    pub org_id: OrgId,
    pub resource: String,
    /// The highest threshold it had reached, which it is now below.
    pub threshold: u32,
    pub used: i64,
    /// `null` when the resource is now unlimited.
    pub limit: Option<i64>,
    pub percentage: Option<f64>,
    /// Whether new use of it is refused now (a trial that has ended, say).
    pub blocked: bool,
    pub cause: RecoveryCause,
    pub plan: String,
    pub period: Option<Period>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for QuotaRecovered {
    const KIND: EventKind = EventKind::QuotaRecovered;
}

/// The threshold a change took a resource back below, if it did: the
/// highest reached before it (used, limit, enforcement), when usage after it
/// is below that percentage of the limit then (or the resource is now
/// unlimited). A change of enforcement or a smaller limit is no recovery.
pub fn recovered_from(before: (i64, Option<i64>, Enforcement), after: (i64, Option<i64>, Enforcement)) -> Option<u32> {
    let was = super::notice::threshold_reached(before.0, before.1, before.2)?;
    let below = match after.1 {
        None => true,
        Some(limit) if limit <= 0 => false,
        Some(limit) => i128::from(after.0) * 100 < i128::from(was) * i128::from(limit),
    };
    below.then_some(was)
}

/// The count `used` must stay below, with `limit`, for usage to be below
/// `threshold` percent: what a write that reports a recovery pins it below.
pub fn below_threshold(threshold: u32, limit: Option<i64>) -> i64 {
    match limit {
        None => i64::MAX,
        Some(limit) => {
            let bound = (i128::from(threshold) * i128::from(limit.max(0)) + 99) / 100;
            i64::try_from(bound).unwrap_or(i64::MAX)
        }
    }
}

impl QuotaRecovered {
    /// What a change that left a counter as `after` (from `before`, both as
    /// they stand at `now`) owes, if it took usage below a threshold it had
    /// reached.
    pub fn between(
        before: &super::usage::Counter,
        after: &super::usage::Counter,
        cause: RecoveryCause,
        now: DateTime<Utc>,
    ) -> Option<QuotaRecovered> {
        let threshold = recovered_from(
            (before.used, before.limit, before.enforcement),
            (after.used, after.limit, after.enforcement),
        )?;
        Some(QuotaRecovered {
            event_id: new_event_id(now),
            org_id: after.org_id.clone(),
            resource: after.resource.clone(),
            threshold,
            used: after.used,
            limit: after.limit,
            percentage: after.limit.map(|l| percentage(after.used, l)),
            blocked: after.refusal(1, now).is_some(),
            cause,
            plan: after.plan.clone(),
            period: after.period,
            at: now,
        })
    }
}

/// An admin reset a resource's current count to 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReset {
    /// The same on every publication of this event (it may be published
    /// more than once: see `Pending`).
    pub event_id: String,
    pub org_id: OrgId,
    pub resource: String,
    pub before: i64,
    pub actor: String,
    pub reason: String,
    pub period: Option<Period>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for QuotaReset {
    const KIND: EventKind = EventKind::QuotaReset;
}

/// An org's plan changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanChanged {
    pub event_id: String,
    pub org_id: OrgId,
    pub from: String,
    pub to: String,
    pub actor: String,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for PlanChanged {
    const KIND: EventKind = EventKind::PlanChanged;
}

/// A free org's trial ended (published with its one email).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialExpired {
    pub org_id: OrgId,
    pub plan: String,
    #[serde(serialize_with = "ser_time")]
    pub trial_ended_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl Event for TrialExpired {
    const KIND: EventKind = EventKind::TrialExpired;
}

/// A billing period ended: the final figures of each of its resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsagePeriodClosed {
    pub org_id: OrgId,
    pub plan: String,
    /// `<orgId>/<period start>`: what identifies the period.
    pub period_id: String,
    pub period: Period,
    pub resources: Vec<ClosedResource>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

/// One resource of a closed period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosedResource {
    pub resource: String,
    pub used: i64,
    pub limit: Option<i64>,
    pub overage: i64,
    pub enforcement: Enforcement,
    pub plan: String,
}

impl UsagePeriodClosed {
    pub fn period_id(org: &OrgId, period: Period) -> String {
        format!("{org}/{}", time(&period.start))
    }
}

impl Event for UsagePeriodClosed {
    const KIND: EventKind = EventKind::UsagePeriodClosed;
}

impl QuotaThresholdCrossed {
    /// `percentage` from `used` and `limit`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        org_id: OrgId,
        resource: &str,
        threshold: u32,
        used: i64,
        limit: i64,
        enforcement: Enforcement,
        plan: &str,
        period: Option<Period>,
        at: DateTime<Utc>,
    ) -> Self {
        QuotaThresholdCrossed {
            org_id,
            resource: resource.to_string(),
            threshold,
            used,
            limit,
            percentage: percentage(used, limit),
            enforcement,
            plan: plan.to_string(),
            period,
            at,
        }
    }
}

/// A grant as `GrantAdded` and `GrantRevoked` carry it, with the limit it
/// leaves its resource at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantDetail {
    pub event_id: String,
    pub org_id: OrgId,
    pub resource: String,
    pub grant_id: String,
    pub amount: i64,
    #[serde(serialize_with = "ser_time")]
    pub expires_at: DateTime<Utc>,
    pub reason: String,
    /// Who added the grant (`GrantAdded`) or revoked it (`GrantRevoked`).
    pub actor: String,
    /// The resource's effective limit after this event (`null`: unlimited).
    pub limit: Option<i64>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl GrantDetail {
    pub fn new(
        org_id: &OrgId,
        resource: &str,
        details: &GrantDetails,
        actor: &str,
        limit: Option<i64>,
        at: DateTime<Utc>,
    ) -> Self {
        GrantDetail {
            event_id: new_event_id(at),
            org_id: org_id.clone(),
            resource: resource.to_string(),
            grant_id: details.grant.id.clone(),
            amount: details.grant.amount,
            expires_at: details.grant.expires_at,
            reason: details.reason.clone(),
            actor: actor.to_string(),
            limit,
            at,
        }
    }
}

/// An admin added a grant to an org's limit of a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct GrantAdded(pub GrantDetail);

impl Event for GrantAdded {
    const KIND: EventKind = EventKind::GrantAdded;
}

/// An admin revoked a grant before it expired.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct GrantRevoked(pub GrantDetail);

impl Event for GrantRevoked {
    const KIND: EventKind = EventKind::GrantRevoked;
}

/// A grant expired and was taken off its counter (by the next write to it,
/// or the daily job): `expiresAt` is when it stopped counting, `at` when it
/// was taken off, `limit` the effective limit without it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantExpired {
    pub org_id: OrgId,
    pub resource: String,
    pub grant_id: String,
    pub amount: i64,
    #[serde(serialize_with = "ser_time")]
    pub expires_at: DateTime<Utc>,
    pub limit: Option<i64>,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

impl GrantExpired {
    pub fn new(org_id: &OrgId, expired: &Expired, at: DateTime<Utc>) -> Self {
        GrantExpired {
            org_id: org_id.clone(),
            resource: expired.resource.clone(),
            grant_id: expired.grant.id.clone(),
            amount: expired.grant.amount,
            expires_at: expired.grant.expires_at,
            limit: expired.limit,
            at,
        }
    }
}

impl Event for GrantExpired {
    const KIND: EventKind = EventKind::GrantExpired;
}

/// The daily job's run `run_id` goes on with its part `part` in another
/// invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DailyJobContinued {
    pub run_id: String,
    pub part: u32,
}

impl Event for DailyJobContinued {
    const KIND: EventKind = EventKind::DailyJobContinued;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::Grant;
    use std::collections::BTreeMap;

    const DOCS: &str = include_str!("../../../docs/events.md");

    /// The JSON example under each `## Name` heading of docs/events.md.
    fn documented() -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        for section in DOCS.split("\n## ").skip(1) {
            let name = section.lines().next().unwrap_or_default().trim().to_string();
            let json = section.split("```json").nth(1).and_then(|rest| rest.split("```").next());
            let json = json.unwrap_or_else(|| panic!("{name} has a JSON example"));
            out.insert(name.clone(), serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}")));
        }
        out
    }

    /// The shape of a JSON value: its keys, recursively, and the JSON
    /// types of its leaves (null counts as any type, as an absent period).
    fn shape(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value::*;
        match value {
            Object(map) => Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
            Array(items) => Array(items.iter().take(1).map(shape).collect()),
            Null => "null".into(),
            Bool(_) => "bool".into(),
            Number(_) => "number".into(),
            String(_) => "string".into(),
        }
    }

    fn same_shape(rendered: &serde_json::Value, documented: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match (rendered, documented) {
            (Object(a), Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_shape(v, w)))
            }
            (Array(a), Array(b)) => a.iter().zip(b).all(|(v, w)| same_shape(v, w)),
            (Null, _) | (_, Null) => true,
            (a, b) => shape(a) == shape(b),
        }
    }

    #[test]
    fn every_event_renders_as_docs_events_md_documents_it() {
        let org = OrgId::parse("acme").unwrap();
        let at: DateTime<Utc> = "2026-04-01T00:15:02Z".parse().unwrap();
        let period =
            Period { start: "2026-03-01T00:00:00Z".parse().unwrap(), end: "2026-04-01T00:00:00Z".parse().unwrap() };
        let rendered = [
            QuotaThresholdCrossed::new(
                org.clone(),
                "conversations",
                110,
                112,
                100,
                Enforcement::Soft,
                "basic",
                Some(period),
                at,
            )
            .entry(),
            QuotaExceeded {
                org_id: org.clone(),
                resource: "conversations".into(),
                used: 100,
                limit: 100,
                blocked: true,
                plan: "free".into(),
                period: Some(period),
                at,
            }
            .entry(),
            QuotaRecovered {
                event_id: new_event_id(at),
                org_id: org.clone(),
                resource: "conversations".into(),
                threshold: 110,
                used: 112,
                limit: Some(150),
                percentage: Some(74.67),
                blocked: false,
                cause: RecoveryCause::Grant,
                plan: "basic".into(),
                period: Some(period),
                at,
            }
            .entry(),
            QuotaReset {
                event_id: new_event_id(at),
                org_id: org.clone(),
                resource: "conversations".into(),
                before: 85,
                actor: "admin@example.com".into(),
                reason: "Support ticket 4711".into(),
                period: Some(period),
                at,
            }
            .entry(),
            PlanChanged {
                event_id: new_event_id(at),
                org_id: org.clone(),
                from: "free".into(),
                to: "growth".into(),
                actor: "a".into(),
                at,
            }
            .entry(),
            TrialExpired { org_id: org.clone(), plan: "free".into(), trial_ended_at: at, at }.entry(),
            UsagePeriodClosed {
                org_id: org.clone(),
                plan: "basic".into(),
                period_id: UsagePeriodClosed::period_id(&org, period),
                period,
                resources: vec![ClosedResource {
                    resource: "conversations".into(),
                    used: 130,
                    limit: Some(100),
                    overage: 30,
                    enforcement: Enforcement::Soft,
                    plan: "basic".into(),
                }],
                at,
            }
            .entry(),
            DailyJobContinued { run_id: "20260401T001500Z-4f2a9c01".into(), part: 2 }.entry(),
            GrantAdded(grant_detail(&org, at)).entry(),
            GrantRevoked(grant_detail(&org, at)).entry(),
            GrantExpired::new(
                &org,
                &Expired { resource: "conversations".into(), grant: grant(at), limit: Some(100) },
                at,
            )
            .entry(),
        ];
        let documented = documented();
        assert_eq!(documented.len(), rendered.len(), "one documented example per event: {:?}", documented.keys());
        for (kind, detail) in rendered {
            let doc = &documented[kind.detail_type()];
            assert!(same_shape(&detail, doc), "{}: rendered {detail}\ndocumented {doc}", kind.detail_type());
        }
        let closed = &rendered_period_id(&org, period);
        assert_eq!(closed, "acme/2026-03-01T00:00:00Z");
    }

    #[test]
    fn recovery_is_from_the_highest_threshold_reached_to_a_lower_one() {
        let (soft, hard) = (Enforcement::Soft, Enforcement::Hard);
        let r = |b: (i64, Option<i64>), a: (i64, Option<i64>), e| recovered_from((b.0, b.1, e), (a.0, a.1, e));
        assert_eq!(r((112, Some(100)), (112, Some(150)), soft), Some(110), "a grant: 110 % to 74 %");
        assert_eq!(r((100, Some(100)), (100, Some(120)), hard), Some(100), "100 % to 83 %: still above 80");
        assert_eq!(r((85, Some(100)), (0, Some(100)), hard), Some(80), "a reset");
        assert_eq!(r((85, Some(100)), (85, None), hard), Some(80), "now unlimited");
        assert_eq!(r((70, Some(100)), (0, Some(100)), hard), None, "no threshold reached before");
        assert_eq!(r((85, Some(100)), (82, Some(100)), hard), None, "still at 80 %");
        assert_eq!(r((85, Some(100)), (95, Some(100)), hard), None, "higher");
        assert_eq!(r((85, Some(100)), (85, Some(90)), hard), None, "a smaller limit");
        // A plan change from soft to hard at 130 %: usage did not move, nothing recovered.
        assert_eq!(recovered_from((130, Some(100), soft), (130, Some(100), hard)), None);
        assert_eq!(r((85, Some(100)), (85, Some(0)), hard), None, "a limit of 0");
        // The count a recovery's write is pinned below: under 80 % of 110 is below 88.
        assert_eq!(below_threshold(80, Some(110)), 88);
        assert!(
            r((85, Some(100)), (87, Some(110)), hard).is_some() && r((85, Some(100)), (88, Some(110)), hard).is_none()
        );
    }

    fn grant(at: DateTime<Utc>) -> Grant {
        Grant { id: "grt_5f1c0a9e3b7d4c2a8e6f0b1d".into(), amount: 50, expires_at: at }
    }

    fn grant_detail(org: &OrgId, at: DateTime<Utc>) -> GrantDetail {
        let details = GrantDetails {
            grant: grant(at),
            reason: "Spring promo".into(),
            created_by: "admin@example.com".into(),
            created_at: at,
        };
        GrantDetail::new(org, "conversations", &details, "admin@example.com", Some(150), at)
    }

    fn rendered_period_id(org: &OrgId, period: Period) -> String {
        UsagePeriodClosed::period_id(org, period)
    }
}
