//! The audit log: who changed what in an org, and why. Pure; each entry is
//! written in the same transaction as the change it records.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::grant::GrantDetails;
use super::org::OrgProfile;

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    OrgCreated,
    PlanChanged,
    LimitsChanged,
    FeaturesChanged,
    UsageSet,
    Reset,
    GrantAdded,
    GrantRevoked,
    ChannelAdded,
    ChannelRemoved,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::OrgCreated => "org_created",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::LimitsChanged => "limits_changed",
            AuditAction::FeaturesChanged => "features_changed",
            AuditAction::GrantAdded => "grant_added",
            AuditAction::GrantRevoked => "grant_revoked",
            AuditAction::UsageSet => "usage_set",
            AuditAction::Reset => "reset",
            AuditAction::ChannelAdded => "channel_added",
            AuditAction::ChannelRemoved => "channel_removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::OrgCreated,
            Self::PlanChanged,
            Self::LimitsChanged,
            Self::FeaturesChanged,
            Self::UsageSet,
            Self::Reset,
            Self::GrantAdded,
            Self::GrantRevoked,
            Self::ChannelAdded,
            Self::ChannelRemoved,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub resource: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
}

impl AuditEntry {
    /// `PUT …/usage/{r}`: the count set from `before` to `after`.
    pub fn usage_set(at: DateTime<Utc>, actor: &str, resource: &str, before: i64, after: i64) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.to_string(),
            action: AuditAction::UsageSet,
            resource: Some(resource.to_string()),
            before: Some(before.into()),
            after: Some(after.into()),
            reason: None,
        }
    }

    /// A grant added (`after`) or revoked (`before`), with its reason.
    pub fn grant(
        at: DateTime<Utc>,
        actor: &str,
        action: AuditAction,
        grant: &GrantDetails,
        resource: &str,
    ) -> AuditEntry {
        let value = serde_json::to_value(grant).ok();
        let (before, after) = if action == AuditAction::GrantAdded { (None, value) } else { (value, None) };
        AuditEntry {
            at,
            actor: actor.to_string(),
            action,
            resource: Some(resource.to_string()),
            before,
            after,
            reason: Some(grant.reason.clone()),
        }
    }

    /// A notification channel added (`after`) or removed (`before`): what it
    /// is, never its secret.
    pub fn channel(
        at: DateTime<Utc>,
        actor: &str,
        action: AuditAction,
        channel: &super::channel::Channel,
    ) -> AuditEntry {
        let value = Some(channel.to_json(super::channel::Shown::Masked));
        let (before, after) = if action == AuditAction::ChannelAdded { (None, value) } else { (value, None) };
        AuditEntry { at, actor: actor.to_string(), action, resource: None, before, after, reason: None }
    }

    /// An admin reset of `resource` from `before` to 0.
    pub fn reset(at: DateTime<Utc>, actor: &str, resource: &str, before: i64, reason: &str) -> AuditEntry {
        AuditEntry {
            action: AuditAction::Reset,
            after: Some(0.into()),
            reason: Some(reason.to_string()),
            ..AuditEntry::usage_set(at, actor, resource, before, 0)
        }
    }
}

/// The entries an org's creation or update records: created; plan changed;
/// limits changed.
pub fn org_entries(
    before: Option<&OrgProfile>,
    after: &OrgProfile,
    actor: &str,
    now: DateTime<Utc>,
) -> Vec<AuditEntry> {
    let entry = |action: AuditAction, before: Option<serde_json::Value>, after: Option<serde_json::Value>| AuditEntry {
        at: now,
        actor: actor.to_string(),
        action,
        resource: None,
        before,
        after,
        reason: None,
    };
    match before {
        // What the org starts with: its plan, and any overrides of it.
        None => {
            let mut created = serde_json::json!({ "plan": after.plan });
            if !after.limits.is_empty() {
                created["limits"] = serde_json::json!(after.limits);
            }
            if !after.features.is_empty() {
                created["features"] = serde_json::json!(after.features);
            }
            vec![entry(AuditAction::OrgCreated, None, Some(created))]
        }
        Some(b) => {
            let mut out = Vec::new();
            if b.plan != after.plan {
                out.push(entry(AuditAction::PlanChanged, Some(b.plan.clone().into()), Some(after.plan.clone().into())));
            }
            if b.limits != after.limits {
                out.push(entry(
                    AuditAction::LimitsChanged,
                    Some(serde_json::json!(b.limits)),
                    Some(serde_json::json!(after.limits)),
                ));
            }
            if b.features != after.features {
                out.push(entry(
                    AuditAction::FeaturesChanged,
                    Some(serde_json::json!(b.features)),
                    Some(serde_json::json!(after.features)),
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_their_names() {
        for a in [
            AuditAction::OrgCreated,
            AuditAction::PlanChanged,
            AuditAction::LimitsChanged,
            AuditAction::FeaturesChanged,
            AuditAction::UsageSet,
            AuditAction::Reset,
            AuditAction::GrantAdded,
            AuditAction::GrantRevoked,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert_eq!(AuditAction::parse("dropped"), None);
    }

    #[test]
    fn a_reset_records_its_reason() {
        let at = "2026-03-01T00:00:00Z".parse().unwrap();
        let e = AuditEntry::reset(at, "admin", "conversations", 85, "ticket 1");
        assert_eq!((e.action, e.before, e.after), (AuditAction::Reset, Some(85.into()), Some(0.into())));
        assert_eq!(e.reason.as_deref(), Some("ticket 1"));
    }
}
