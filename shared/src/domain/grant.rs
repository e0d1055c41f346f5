//! Grants: units an admin adds to an org's limit of one resource until a
//! given time (boosts, promo units, custom adjustments). Pure: the grant, the
//! request that makes one, and its id.
//!
//! A counter keeps its live grants beside its limit (id, amount and expiry:
//! what a write needs), and the limit it stores is the effective one (the
//! plan's, or the org's override, plus every grant it keeps). A grant's
//! reason and author live in an item of their own, off the hot counter. A
//! grant that has expired counts for nothing from its expiry on, whether or
//! not it has been taken off the counter yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MAX_COUNT;

/// Most grants one counter keeps at once (they live on its item).
pub const MAX_GRANTS: usize = 50;
/// Longest accepted reason, in characters.
pub const MAX_REASON: usize = 500;

const PREFIX: &str = "grt_";

/// A grant of `amount` more units until `expires_at`, as its counter keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub id: String,
    pub amount: i64,
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// A grant with why and by whom it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantDetails {
    #[serde(flatten)]
    pub grant: Grant,
    pub reason: String,
    pub created_by: String,
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A grant a write took off its counter once it had expired, and the
/// resource's effective limit without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub resource: String,
    pub grant: Grant,
    pub limit: Option<i64>,
}

impl Grant {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    /// A new grant id: `grt_` and 96 random bits.
    pub fn new_id() -> String {
        format!("{PREFIX}{}", super::random_hex(12))
    }

    /// Whether `id` has the shape of a grant id (so it can name a map key).
    pub fn valid_id(id: &str) -> bool {
        id.strip_prefix(PREFIX).is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// The body of `POST /v1/admin/orgs/{orgId}/grants`, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantBody {
    pub resource: String,
    pub amount: serde_json::Value,
    #[serde(default, deserialize_with = "super::present")]
    pub expires_at: Option<String>,
    pub reason: String,
}

/// A checked grant request. `expires_at: None` means the end of the
/// current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub resource: String,
    pub amount: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub reason: String,
}

impl GrantRequest {
    /// Checks a body; the error names the field. `resource` is checked
    /// against the catalogue by the caller.
    pub fn parse(body: GrantBody, now: DateTime<Utc>) -> Result<GrantRequest, String> {
        let amount = super::json_integer(&body.amount)
            .filter(|a| (1..=MAX_COUNT).contains(a))
            .ok_or_else(|| format!("amount must be an integer from 1 to {MAX_COUNT}"))?;
        let expires_at = body
            .expires_at
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| "expiresAt must be an RFC 3339 date-time".to_string())
            })
            .transpose()?;
        if expires_at.is_some_and(|t| t <= now) {
            return Err("expiresAt must be in the future".into());
        }
        let reason = body.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(format!("reason is required, 1 to {MAX_REASON} characters"));
        }
        Ok(GrantRequest { resource: body.resource, amount, expires_at, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-03-15T10:00:00Z".parse().unwrap()
    }

    fn parse(json: &str) -> Result<GrantRequest, String> {
        let body: GrantBody = serde_json::from_str(json).map_err(|e| e.to_string())?;
        GrantRequest::parse(body, now())
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let ok = parse(r#"{"resource":"conversations","amount":50,"reason":" promo SPRING "}"#).unwrap();
        assert_eq!((ok.amount, ok.expires_at, ok.reason.as_str()), (50, None, "promo SPRING"));
        let dated = parse(r#"{"resource":"users","amount":1,"expiresAt":"2026-04-01T00:00:00Z","reason":"x"}"#);
        assert_eq!(dated.unwrap().expires_at, Some("2026-04-01T00:00:00Z".parse().unwrap()));
        for (json, needle) in [
            (r#"{"resource":"users","amount":0,"reason":"x"}"#, "amount"),
            (r#"{"resource":"users","amount":1.5,"reason":"x"}"#, "amount"),
            (r#"{"resource":"users","amount":"5","reason":"x"}"#, "amount"),
            (r#"{"resource":"users","amount":1,"reason":"  "}"#, "reason"),
            (r#"{"resource":"users","amount":1}"#, "reason"),
            (r#"{"resource":"users","amount":1,"reason":"x","expiresAt":"soon"}"#, "expiresAt"),
            (r#"{"resource":"users","amount":1,"reason":"x","expiresAt":"2026-03-15T10:00:00Z"}"#, "future"),
            (r#"{"resource":"users","amount":1,"reason":"x","expiresAt":null}"#, "null"),
            (r#"{"resource":"users","amount":1,"reason":"x","colour":1}"#, "colour"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        let long = format!(r#"{{"resource":"users","amount":1,"reason":"{}"}}"#, "r".repeat(MAX_REASON + 1));
        assert!(parse(&long).unwrap_err().contains("reason"));
    }

    #[test]
    fn ids() {
        let id = Grant::new_id();
        assert!(Grant::valid_id(&id), "{id}");
        assert_ne!(Grant::new_id(), id);
        for bad in ["", "grt_", "grt_xyz", "grt_0123456789abcdef0123456", "rsv_0123456789abcdef01234567"] {
            assert!(!Grant::valid_id(bad), "{bad}");
        }
    }
}
