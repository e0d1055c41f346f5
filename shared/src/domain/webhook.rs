//! Deliveries to channels: what one is, its id, the signed request a webhook
//! gets (Standard Webhooks), and when a failed one is tried again. Pure.
//!
//! One event on the bus becomes one delivery per channel that takes it. A
//! delivery's id (`webhook-id`) is made from the channel and the event's
//! own identity (`outbound::event_key`), so every attempt of it, any repeat
//! of the event's hand-over, and the event published again carry the same
//! id: receivers deduplicate on it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::events::EventKind;

/// Waits between a delivery's attempts: an attempt right away, then after
/// each of these; 8 attempts over about 23.6 hours. What still fails is
/// dead-lettered.
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(8 * 3600),
];

/// Attempts a delivery gets.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS.len() as u32 + 1;

/// Most of a delivery's attempts its record keeps (the latest).
pub const KEPT_ATTEMPTS: usize = 10;

/// One event for one channel, as it waits in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The `webhook-id`: the same on every attempt.
    pub webhook_id: String,
    pub org_id: String,
    pub channel_id: String,
    /// The event's `detail-type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (the bus's `time`).
    #[serde(with = "super::serde_rfc3339")]
    pub time: DateTime<Utc>,
    /// The event's `detail`, as published.
    pub detail: serde_json::Value,
}

impl Delivery {
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.kind)
    }

    /// What a webhook receives: the event under Standard Webhooks' envelope
    /// (`type`, `timestamp`, `data`: the `detail` as `docs/events.md` documents it).
    pub fn webhook_body(&self) -> String {
        serde_json::json!({
            "type": self.kind,
            "timestamp": super::rfc3339(self.time),
            "data": self.detail,
        })
        .to_string()
    }
}

/// The `webhook-id` of the event the bus knows as `event_id`, for `channel_id`.
pub fn webhook_id(channel_id: &str, event_id: &str) -> String {
    let digest = Sha256::digest(format!("{channel_id}\n{event_id}"));
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The `webhook-signature` header's value: `v1,` and the base64 HMAC-SHA256
/// of `{id}.{timestamp}.{body}` under the secret's key (Standard Webhooks).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt failed; another is due.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed: dead-lettered.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Retrying, Self::Delivered, Self::Failed].into_iter().find(|d| d.as_str() == s)
    }

    /// Nothing more will be sent.
    pub fn settled(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Failed)
    }
}

/// One attempt: when, and what came back (a status code, or why none did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    #[serde(with = "super::serde_rfc3339")]
    pub at: DateTime<Utc>,
    pub response_code: Option<u16>,
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.response_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// What an attempt makes of a delivery: `number` is its attempt (from 1).
/// Delivered on a 2xx; otherwise retried after the schedule's wait, until
/// the last attempt, which fails it.
pub fn after_attempt(attempt: &Attempt, number: u32) -> (DeliveryStatus, Option<Duration>) {
    if attempt.succeeded() {
        return (DeliveryStatus::Delivered, None);
    }
    match RETRY_DELAYS.get(number.saturating_sub(1) as usize) {
        Some(wait) if number < MAX_ATTEMPTS => (DeliveryStatus::Retrying, Some(*wait)),
        _ => (DeliveryStatus::Failed, None),
    }
}

/// A delivery as its record keeps it, and the deliveries list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The latest attempts, oldest first.
    pub history: Vec<Attempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_standard_webhooks_v1() {
        // The Standard Webhooks specification's example (its README's
        // "Signature scheme"): this secret, id, timestamp and body.
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_id_per_event_and_channel() {
        let a = webhook_id("chn_1", "evt-1");
        assert_eq!(a, webhook_id("chn_1", "evt-1"), "the same on every attempt");
        assert_ne!(a, webhook_id("chn_2", "evt-1"));
        assert_ne!(a, webhook_id("chn_1", "evt-2"));
        assert!(a.starts_with("msg_") && a.len() == 28, "{a}");
    }

    #[test]
    fn failed_attempts_are_retried_for_about_a_day_then_fail() {
        let at = "2026-12-07T10:00:00Z".parse().unwrap();
        let failed = Attempt { at, response_code: Some(500), error: None };
        let refused = Attempt { at, response_code: None, error: Some("connection refused".into()) };
        let ok = Attempt { at, response_code: Some(204), error: None };
        assert_eq!(after_attempt(&ok, 1), (DeliveryStatus::Delivered, None));
        assert_eq!(after_attempt(&failed, 1), (DeliveryStatus::Retrying, Some(Duration::from_secs(5))));
        assert_eq!(after_attempt(&refused, 2), (DeliveryStatus::Retrying, Some(Duration::from_secs(300))));
        assert_eq!(after_attempt(&failed, MAX_ATTEMPTS), (DeliveryStatus::Failed, None));
        let redirect = Attempt { response_code: Some(301), ..failed.clone() };
        assert_eq!(after_attempt(&redirect, 1).0, DeliveryStatus::Retrying, "a redirect is not followed");
        let total: Duration = RETRY_DELAYS.iter().sum();
        assert!((Duration::from_secs(23 * 3600)..=Duration::from_secs(24 * 3600)).contains(&total), "{total:?}");
    }
}
