//! Reservations: units held against a limit while work of unknown size
//! runs, then committed (the actual use) or released. Pure: the id, the
//! hold a counter keeps, the outcome a reservation comes to, and the TTL.
//!
//! A reservation's id names everything a commit or release needs to write
//! in one request without reading first: the resource (which counter), the
//! amount held and when it expires. The write checks them against the hold
//! the counter keeps, so an id that was not issued names nothing. The last
//! 8 hex digits of its nonce check the rest against the org it was issued
//! to (a SHA-256 of them all; a check value, not a secret): once its hold
//! is gone, an id issued to this org can be told "expired" and any other
//! (forged, altered, another org's) "not found".

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::org::OrgId;

/// Default time a reservation holds its units.
pub const DEFAULT_TTL_SECONDS: i64 = 600;
/// Longest a reservation may hold its units.
pub const MAX_TTL_SECONDS: i64 = 86_400;
/// Most reservations open at once on one counter. They live on its item,
/// about 60 bytes each, and DynamoDB bills a write by the item's size (per
/// KB): 100 open reservations make every write to the counter cost ~7 units.
pub const MAX_OPEN: usize = 100;
/// How long a reservation's outcome is remembered for repeats.
pub const OUTCOME_TTL_DAYS: i64 = 7;

const PREFIX: &str = "rsv_";

/// A reservation's id, decoded. `nonce` names its hold on the counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationId {
    pub resource: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    pub nonce: String,
}

impl ReservationId {
    /// A new id for `org`: 96 random bits name the hold, 32 more check it.
    pub fn new(org: &OrgId, resource: &str, amount: i64, expires_at: DateTime<Utc>) -> ReservationId {
        let random = super::random_hex(12);
        let check = check(org, resource, amount, expires_at, &random);
        ReservationId { resource: resource.to_string(), amount, expires_at, nonce: format!("{random}{check}") }
    }

    /// Whether this id was issued to `org`, as it is: its check holds.
    pub fn issued_to(&self, org: &OrgId) -> bool {
        let (random, tail) = self.nonce.split_at(self.nonce.len().min(24));
        tail == check(org, &self.resource, self.amount, self.expires_at, random)
    }

    /// `rsv_` and the base64url of `resource.amount.expiry.nonce`: opaque to
    /// clients, and one path segment.
    pub fn encode(&self) -> String {
        let raw = format!("{}.{}.{}.{}", self.resource, self.amount, self.expires_at.timestamp(), self.nonce);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// `None` for anything [`encode`](Self::encode) did not make.
    pub fn decode(id: &str) -> Option<ReservationId> {
        let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix(PREFIX)?).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.split('.');
        let (resource, amount, expiry, nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if parts.next().is_some() || resource.is_empty() || !nonce_ok {
            return None;
        }
        let decoded = ReservationId {
            resource: resource.to_string(),
            amount: amount.parse().ok().filter(|a| *a > 0)?,
            expires_at: DateTime::from_timestamp(expiry.parse().ok()?, 0)?,
            nonce: nonce.to_string(),
        };
        // One id per reservation: `+5` or `05` for 5 is not it.
        (decoded.encode() == id).then_some(decoded)
    }
}

/// 8 hex digits of SHA-256 over an id's parts and the org it is issued to.
fn check(org: &OrgId, resource: &str, amount: i64, expires_at: DateTime<Utc>, random: &str) -> String {
    let digest = Sha256::digest(format!("{org}\n{resource}\n{amount}\n{}\n{random}", expires_at.timestamp()));
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Units a counter holds for one open reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub nonce: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

impl Hold {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// When a reservation made at `now` for `ttl_seconds` expires: no later
/// than the end of the period it holds units in.
pub fn expiry(now: DateTime<Utc>, ttl_seconds: i64, period_end: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let wanted = now + Duration::seconds(ttl_seconds);
    period_end.map_or(wanted, |end| wanted.min(end))
}

/// How a reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Committed,
    Released,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Committed => "committed",
            Status::Released => "released",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Committed, Status::Released, Status::Expired].into_iter().find(|v| v.as_str() == s)
    }
}

/// A reservation's end: what was used of what was held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub reservation_id: String,
    pub resource: String,
    pub status: Status,
    /// Units held.
    pub amount: i64,
    /// Units recorded as used (0 unless committed).
    pub used: i64,
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_anything_else_is_not_one() {
        let at: DateTime<Utc> = "2026-03-15T10:10:00Z".parse().unwrap();
        let acme = OrgId::parse("acme").unwrap();
        let id = ReservationId::new(&acme, "conversations", 2000, at);
        let text = id.encode();
        assert!(text.starts_with("rsv_") && !text.contains('/') && !text.contains('.'), "{text}");
        assert_eq!(ReservationId::decode(&text), Some(id.clone()));
        assert_ne!(ReservationId::new(&acme, "conversations", 2000, at).nonce, id.nonce);
        let forged = |raw: &str| format!("rsv_{}", URL_SAFE_NO_PAD.encode(raw));
        let nonce = "0".repeat(32);
        for bad in [
            "".to_string(),
            "rsv_".to_string(),
            "rsv_!!".to_string(),
            text.trim_start_matches("rsv_").to_string(),
            forged(&format!("conversations.0.1.{nonce}")),
            forged(&format!("conversations.-5.1.{nonce}")),
            forged(&format!(".5.1.{nonce}")),
            forged("conversations.5.1.short"),
            forged(&format!("conversations.5.1.{nonce}.x")),
            forged(&format!("conversations.5.x.{nonce}")),
            forged(&format!("conversations.05.1.{nonce}")),
            forged(&format!("conversations.+5.1.{nonce}")),
            forged(&format!("conversations.5.1.{}", "AB".repeat(16))),
        ] {
            assert_eq!(ReservationId::decode(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_id_is_checked_against_the_org_it_was_issued_to() {
        let at: DateTime<Utc> = "2026-03-15T10:10:00Z".parse().unwrap();
        let (acme, other) = (OrgId::parse("acme").unwrap(), OrgId::parse("other").unwrap());
        let id = ReservationId::new(&acme, "conversations", 20, at);
        assert!(id.issued_to(&acme));
        assert!(!id.issued_to(&other), "another org's");
        assert!(!ReservationId { amount: 21, ..id.clone() }.issued_to(&acme), "altered amount");
        assert!(!ReservationId { expires_at: at + Duration::seconds(1), ..id.clone() }.issued_to(&acme));
        assert!(!ReservationId { resource: "contacts".into(), ..id.clone() }.issued_to(&acme));
        assert!(!ReservationId { nonce: "ab".repeat(16), ..id }.issued_to(&acme), "made up");
    }

    #[test]
    fn a_reservation_ends_with_its_period() {
        let now: DateTime<Utc> = "2026-03-31T23:55:00Z".parse().unwrap();
        let end: DateTime<Utc> = "2026-04-01T00:00:00Z".parse().unwrap();
        assert_eq!(expiry(now, 600, Some(end)), end);
        assert_eq!(expiry(now, 60, Some(end)), now + Duration::seconds(60));
        assert_eq!(expiry(now, 600, None), now + Duration::seconds(600));
    }
}
