//! Organizations: ids, locales, contacts, profiles and the PUT patch that
//! creates or updates one. Parse, don't validate: a value of these types is
//! always well formed.
//!
//! Over 400 lines for a reason: a third of it is the PUT patch's field-by-
//! field tests, kept beside the parsing they hold to the contract.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::MAX_COUNT;
use super::catalogue::Catalogue;
pub use super::locale::Locale;

/// 1–64 of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| OrgId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who hears about the org's quota.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<String>,
    #[serde(default)]
    pub admins: Vec<String>,
}

impl Contacts {
    /// Every address once, in order: owner, billing, admins.
    pub fn recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = self.owner.iter().chain(self.billing.iter()).chain(self.admins.iter());
        for address in all {
            if !out.iter().any(|seen| seen.eq_ignore_ascii_case(address)) {
                out.push(address.clone());
            }
        }
        out
    }
}

/// A stored organization.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgProfile {
    pub org_id: OrgId,
    pub plan: String,
    pub limits: BTreeMap<String, i64>,
    /// The org's own value for a feature, over its plan's.
    pub features: BTreeMap<String, bool>,
    pub contacts: Contacts,
    pub locale: Locale,
    pub timezone: Tz,
    pub anchor_day: u32,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrgProfile {
    /// The trial end that binds now: only plans with a trial have one.
    pub fn active_trial(&self, catalogue: &Catalogue) -> Option<DateTime<Utc>> {
        let plan = catalogue.plan(&self.plan)?;
        plan.trial_days.and(self.trial_ends_at)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "orgId": self.org_id,
            "plan": self.plan,
            "limits": self.limits,
            "features": self.features,
            "contacts": self.contacts,
            "locale": self.locale,
            "timezone": self.timezone.name(),
            "anchorDay": self.anchor_day,
            "trialEndsAt": self.trial_ends_at.map(crate::domain::rfc3339),
            "createdAt": crate::domain::rfc3339(self.created_at),
            "updatedAt": crate::domain::rfc3339(self.updated_at),
        })
    }
}

/// The body of `PUT /v1/orgs/{orgId}`, as sent. Absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgPatchBody {
    #[serde(default, deserialize_with = "super::present")]
    pub plan: Option<String>,
    /// `{resource: n}` sets an override, `{resource: null}` removes it.
    #[serde(default, deserialize_with = "super::present")]
    pub limits: Option<BTreeMap<String, Option<serde_json::Value>>>,
    /// `{feature: true|false}` sets an override, `{feature: null}` removes it.
    #[serde(default, deserialize_with = "super::present")]
    pub features: Option<BTreeMap<String, Option<bool>>>,
    #[serde(default, deserialize_with = "super::present_object")]
    pub contacts: Option<ContactsBody>,
    #[serde(default, deserialize_with = "super::present")]
    pub locale: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    pub anchor_day: Option<serde_json::Value>,
    /// `null` removes the trial end.
    #[serde(default, deserialize_with = "double_option")]
    pub trial_ends_at: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsBody {
    #[serde(default, deserialize_with = "double_option")]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub billing: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    pub admins: Option<Vec<String>>,
}

fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// A checked patch: every field that is present is valid.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OrgPatch {
    pub plan: Option<String>,
    pub limits: BTreeMap<String, Option<i64>>,
    pub features: BTreeMap<String, Option<bool>>,
    pub owner: Option<Option<String>>,
    pub billing: Option<Option<String>>,
    pub admins: Option<Vec<String>>,
    pub locale: Option<Locale>,
    pub timezone: Option<Tz>,
    pub anchor_day: Option<u32>,
    pub trial_ends_at: Option<Option<DateTime<Utc>>>,
}

impl OrgPatch {
    /// Checks a PUT body against the catalogue. The error names the field.
    pub fn parse(body: OrgPatchBody, catalogue: &Catalogue) -> Result<Self, String> {
        let mut patch = OrgPatch::default();
        if let Some(plan) = body.plan {
            if catalogue.plan(&plan).is_none() {
                let known: Vec<&str> = catalogue.plans.keys().map(String::as_str).collect();
                return Err(format!("plan must be one of {}", known.join(", ")));
            }
            patch.plan = Some(plan);
        }
        for (resource, value) in body.limits.unwrap_or_default() {
            if catalogue.resource(&resource).is_none() {
                return Err(format!("limits: unknown resource {resource:?}"));
            }
            let limit = match value {
                None => None,
                Some(v) => Some(
                    super::json_integer(&v)
                        .filter(|n| (0..=MAX_COUNT).contains(n))
                        .ok_or_else(|| format!("limits.{resource} must be an integer from 0 to {MAX_COUNT} or null"))?,
                ),
            };
            patch.limits.insert(resource, limit);
        }
        for (feature, value) in body.features.unwrap_or_default() {
            if !catalogue.features.contains_key(&feature) {
                let known: Vec<&str> = catalogue.features.keys().map(String::as_str).collect();
                return Err(format!("features: unknown feature {feature:?}; known: {}", known.join(", ")));
            }
            patch.features.insert(feature, value);
        }
        if let Some(contacts) = body.contacts {
            if let Some(owner) = contacts.owner {
                patch.owner = Some(owner.map(|a| parse_email("contacts.owner", a)).transpose()?);
            }
            if let Some(billing) = contacts.billing {
                patch.billing = Some(billing.map(|a| parse_email("contacts.billing", a)).transpose()?);
            }
            if let Some(admins) = contacts.admins {
                if admins.len() > MAX_ADMINS {
                    return Err(format!(
                        "contacts.admins may hold at most {MAX_ADMINS} addresses (SES sends one message to at most \
                         50 recipients, owner and billing included)"
                    ));
                }
                let admins =
                    admins.into_iter().map(|a| parse_email("contacts.admins", a)).collect::<Result<Vec<_>, _>>()?;
                patch.admins = Some(admins);
            }
        }
        if let Some(locale) = body.locale {
            patch.locale = Some(Locale::parse(&locale).ok_or("locale must be \"en\" or \"da\"")?);
        }
        if let Some(tz) = body.timezone {
            patch.timezone = Some(tz.parse::<Tz>().map_err(|_| format!("timezone {tz:?} is not an IANA time zone"))?);
        }
        if let Some(day) = body.anchor_day {
            let day = super::json_integer(&day)
                .filter(|d| (1..=31).contains(d))
                .ok_or("anchorDay must be an integer from 1 to 31")?;
            patch.anchor_day = Some(day as u32);
        }
        if let Some(trial) = body.trial_ends_at {
            patch.trial_ends_at = Some(
                trial
                    .map(|t| {
                        DateTime::parse_from_rfc3339(&t)
                            .map(|t| t.with_timezone(&Utc))
                            .map_err(|_| "trialEndsAt must be an RFC 3339 date-time".to_string())
                    })
                    .transpose()?,
            );
        }
        Ok(patch)
    }

    /// The profile after this patch: on `existing`, or a new org with defaults.
    pub fn apply(
        &self,
        org_id: &OrgId,
        existing: Option<&OrgProfile>,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> OrgProfile {
        let mut profile = match existing {
            Some(p) => p.clone(),
            None => {
                let plan = self.plan.clone().unwrap_or_else(|| "free".to_string());
                let trial_ends_at =
                    catalogue.plan(&plan).and_then(|p| p.trial_days).map(|days| now + Duration::days(i64::from(days)));
                OrgProfile {
                    org_id: org_id.clone(),
                    plan,
                    limits: BTreeMap::new(),
                    features: BTreeMap::new(),
                    contacts: Contacts::default(),
                    locale: Locale::En,
                    timezone: Tz::UTC,
                    anchor_day: 1,
                    trial_ends_at,
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        if let Some(plan) = &self.plan {
            profile.plan = plan.clone();
        }
        for (resource, limit) in &self.limits {
            match limit {
                Some(l) => profile.limits.insert(resource.clone(), *l),
                None => profile.limits.remove(resource),
            };
        }
        for (feature, value) in &self.features {
            match value {
                Some(v) => profile.features.insert(feature.clone(), *v),
                None => profile.features.remove(feature),
            };
        }
        if let Some(owner) = &self.owner {
            profile.contacts.owner = owner.clone();
        }
        if let Some(billing) = &self.billing {
            profile.contacts.billing = billing.clone();
        }
        if let Some(admins) = &self.admins {
            profile.contacts.admins = admins.clone();
        }
        if let Some(locale) = self.locale {
            profile.locale = locale;
        }
        if let Some(tz) = self.timezone {
            profile.timezone = tz;
        }
        if let Some(day) = self.anchor_day {
            profile.anchor_day = day;
        }
        if let Some(trial) = self.trial_ends_at {
            profile.trial_ends_at = trial;
        }
        profile.updated_at = now;
        profile
    }
}

/// Most admin addresses: with the owner and billing, the 50 recipients SES
/// takes in one message.
pub const MAX_ADMINS: usize = 48;

fn parse_email(field: &str, address: String) -> Result<String, String> {
    let address = address.trim().to_string();
    if !address.is_ascii() {
        return Err(format!(
            "{field}: {address:?} is not ASCII: SES sends only to 7-bit addresses (write an international \
             domain in its xn-- form)"
        ));
    }
    let valid = address.len() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if valid { Ok(address) } else { Err(format!("{field}: {address:?} is not an email address")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-03-15T10:00:00Z".parse().unwrap()
    }

    fn patch(json: &str) -> Result<OrgPatch, String> {
        let body: OrgPatchBody = serde_json::from_str(json).map_err(|e| e.to_string())?;
        OrgPatch::parse(body, Catalogue::builtin())
    }

    #[test]
    fn org_ids() {
        assert!(OrgId::parse("acme_Co-1").is_some());
        assert!(OrgId::parse(&"a".repeat(64)).is_some());
        for bad in ["", "a b", "a/b", "ø", &"a".repeat(65)] {
            assert!(OrgId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn create_defaults_to_free_with_a_30_day_trial() {
        let org = OrgId::parse("acme").unwrap();
        let p = patch("{}").unwrap().apply(&org, None, Catalogue::builtin(), now());
        assert_eq!(p.plan, "free");
        assert_eq!(p.locale, Locale::En);
        assert_eq!(p.timezone, Tz::UTC);
        assert_eq!(p.anchor_day, 1);
        assert_eq!(p.trial_ends_at, Some(now() + Duration::days(30)));
    }

    #[test]
    fn update_keeps_what_is_left_out_and_removes_nulls() {
        let org = OrgId::parse("acme").unwrap();
        let c = Catalogue::builtin();
        let first = patch(
            r#"{"plan":"growth","limits":{"contacts":5,"users":9},"locale":"da",
            "contacts":{"owner":"o@x.dk","billing":"b@x.dk","admins":["a@x.dk"]}}"#,
        )
        .unwrap()
        .apply(&org, None, c, now());
        let second = patch(r#"{"limits":{"users":null},"contacts":{"billing":null}}"#).unwrap().apply(
            &org,
            Some(&first),
            c,
            now(),
        );
        assert_eq!(second.plan, "growth");
        assert_eq!(second.locale, Locale::Da);
        assert_eq!(second.limits, BTreeMap::from([("contacts".to_string(), 5)]));
        assert_eq!(second.contacts.owner.as_deref(), Some("o@x.dk"));
        assert_eq!(second.contacts.billing, None);
        assert_eq!(second.contacts.admins, vec!["a@x.dk".to_string()]);
        let third =
            patch(r#"{"features":{"sso":true,"webhooks":false}}"#).unwrap().apply(&org, Some(&second), c, now());
        let fourth = patch(r#"{"features":{"sso":null}}"#).unwrap().apply(&org, Some(&third), c, now());
        assert_eq!(fourth.features, BTreeMap::from([("webhooks".to_string(), false)]));
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, needle) in [
            (r#"{"plan":"gold"}"#, "plan"),
            (r#"{"limits":{"widgets":1}}"#, "widgets"),
            (r#"{"limits":{"users":-1}}"#, "limits.users"),
            (r#"{"limits":{"users":1.5}}"#, "limits.users"),
            (r#"{"locale":"de"}"#, "locale"),
            (r#"{"timezone":"Mars/Olympus"}"#, "timezone"),
            (r#"{"anchorDay":0}"#, "anchorDay"),
            (r#"{"anchorDay":32}"#, "anchorDay"),
            (r#"{"trialEndsAt":"tomorrow"}"#, "trialEndsAt"),
            (r#"{"contacts":{"owner":"not-an-email"}}"#, "contacts.owner"),
            (r#"{"colour":"red"}"#, "colour"),
            (r#"{"anchorDay":null}"#, "anchorDay"),
            (r#"{"anchorDay":2.5}"#, "anchorDay"),
            (r#"{"plan":null}"#, "null"),
            (r#"{"locale":null}"#, "null"),
            (r#"{"limits":null}"#, "null"),
            (r#"{"contacts":{"admins":null}}"#, "null"),
            (r#"{"contacts":[null,null]}"#, "map"),
            (r#"{"features":{"fax":true}}"#, "fax"),
            (r#"{"features":{"sso":1}}"#, "boolean"),
            (r#"{"features":null}"#, "null"),
        ] {
            let err = patch(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn recipients_are_deduplicated() {
        let contacts = Contacts {
            owner: Some("a@x.dk".into()),
            billing: Some("A@x.dk".into()),
            admins: vec!["b@x.dk".into(), "a@x.dk".into(), "b@x.dk".into()],
        };
        assert_eq!(contacts.recipients(), vec!["a@x.dk".to_string(), "b@x.dk".to_string()]);
    }
}
