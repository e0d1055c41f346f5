//! Deliveries to the orgs' own channels (`domain::channel`): the service's
//! events, as the bus hands them over, to each channel that takes them.
//!
//! Two steps, each driven by a queue. [`fan_out`]: an event becomes one
//! [`Delivery`] per channel that takes it, with its record
//! (`store::channels`), queued. [`attempt`]: one try of one delivery, whose
//! [`Outcome`] says whether to try again, and when. In AWS the queue is SQS
//! (an EventBridge rule puts the events there; `functions/deliver-channels`
//! does both steps, and a failed delivery waits out its backoff as the
//! message's visibility timeout); locally it is [`local`], in-process. A slow
//! or failing receiver costs its own delivery's time only: nothing on the
//! request path waits for a channel.

pub mod http;
pub mod local;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::domain::channel::{Channel, ChannelType, secret_key};
use crate::domain::events::EventKind;
use crate::domain::org::OrgId;
use crate::domain::webhook::{Attempt, Delivery, DeliveryStatus, after_attempt, signature, webhook_id};
use crate::notify::chat::{self, Audience, Chat};
use crate::store::{Store, StoreError};
pub use http::{Net, Sender};

/// An event as the bus handed it over: EventBridge's `id`, `detail-type`,
/// `time` and `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub id: String,
    pub kind: EventKind,
    pub time: DateTime<Utc>,
    pub detail: serde_json::Value,
}

/// Where deliveries wait for their attempts.
pub trait Queue: Send + Sync {
    /// Queues `delivery` for its first attempt.
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), String>>;
}

/// Queues one delivery of `event` per channel of its org that takes it,
/// each with its record; a delivery already settled (a repeat of the
/// event's hand-over) is not queued again. How many were queued.
pub async fn fan_out(store: &Store, event: &BusEvent, queue: &dyn Queue) -> Result<usize, FanOutError> {
    let now = Utc::now();
    let Some(org) = event.detail["orgId"].as_str().and_then(OrgId::parse) else {
        return Ok(0);
    };
    let mut queued = 0;
    for channel in store.channels(&org).await?.iter().filter(|c| c.takes(event.kind)) {
        let delivery = Delivery {
            webhook_id: webhook_id(&channel.id, &event.id),
            org_id: org.to_string(),
            channel_id: channel.id.clone(),
            kind: event.kind.detail_type().to_string(),
            time: event.time,
            detail: event.detail.clone(),
        };
        let earlier = store.open_delivery(&org, &channel.id, &delivery.webhook_id, &delivery.kind, now).await?;
        if earlier.is_some_and(DeliveryStatus::settled) {
            continue;
        }
        queue.send(&delivery).await.map_err(FanOutError::Queue)?;
        queued += 1;
    }
    Ok(queued)
}

#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("queueing a delivery failed: {0}")]
    Queue(String),
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver took it (or an earlier attempt already had).
    Delivered,
    /// Try again after this long.
    Retry(Duration),
    /// That was the last attempt: dead-letter it.
    Failed,
    /// Nothing to send: the channel (or its org) is gone, or the delivery's
    /// record is (kept 30 days).
    Dropped(&'static str),
}

/// Attempt `number` (from 1) of `delivery`, recorded on its record. On the
/// wall clock, whatever clock the service runs on: a receiver checks the
/// signature's timestamp against its own.
pub async fn attempt(
    store: &Store,
    sender: &Sender,
    dashboard_url: &str,
    delivery: &Delivery,
    number: u32,
) -> Result<Outcome, StoreError> {
    let now = Utc::now();
    let Some(org) = OrgId::parse(&delivery.org_id) else {
        return Ok(Outcome::Dropped("not an org id"));
    };
    let Some(record) = store.delivery(&org, &delivery.channel_id, &delivery.webhook_id).await? else {
        return Ok(Outcome::Dropped("no record of this delivery"));
    };
    match record.status {
        DeliveryStatus::Delivered => return Ok(Outcome::Delivered),
        DeliveryStatus::Failed => return Ok(Outcome::Failed),
        DeliveryStatus::Pending | DeliveryStatus::Retrying => {}
    }
    let Some(channel) = store.channel(&org, &delivery.channel_id).await? else {
        return Ok(Outcome::Dropped("the channel was removed"));
    };
    let Some(request) = render(store, &channel, delivery, dashboard_url, now).await? else {
        return Ok(Outcome::Dropped("the channel does not take this event"));
    };
    let (headers, body) = request;
    let answer = sender.post(&channel.url, &headers, body).await;
    let result = Attempt {
        at: now,
        response_code: answer.as_ref().ok().copied(),
        error: answer.err().map(|e| e.chars().take(300).collect()),
    };
    // Delivery ids are attempt numbers apart: a number at or below one
    // recorded is a duplicate's, and changes nothing.
    let number = number.max(record.attempts + 1);
    let (status, wait) = after_attempt(&result, number);
    store.record_attempt(&org, &delivery.channel_id, &record, &result, number, status).await?;
    tracing::info!(
        org = %org, channel = channel.id, webhook = delivery.webhook_id, event = delivery.kind, number,
        code = result.response_code, error = result.error, status = status.as_str(), "channel delivery attempted"
    );
    Ok(match (status, wait) {
        (DeliveryStatus::Delivered, _) => Outcome::Delivered,
        (DeliveryStatus::Retrying, Some(wait)) => Outcome::Retry(wait),
        _ => Outcome::Failed,
    })
}

type Request = (Vec<(&'static str, String)>, String);

/// The request `channel` gets for `delivery`: signed JSON for a webhook, the
/// org's message for a chat.
async fn render(
    store: &Store,
    channel: &Channel,
    delivery: &Delivery,
    dashboard_url: &str,
    now: DateTime<Utc>,
) -> Result<Option<Request>, StoreError> {
    let Some(kind) = delivery.event_kind().filter(|k| channel.takes(*k)) else {
        return Ok(None);
    };
    let chat = match channel.kind {
        ChannelType::Webhook => {
            let body = delivery.webhook_body();
            let key = channel.secret.as_deref().and_then(secret_key).unwrap_or_default();
            let timestamp = now.timestamp();
            let headers = vec![
                ("webhook-id", delivery.webhook_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature(&key, &delivery.webhook_id, timestamp, &body)),
            ];
            return Ok(Some((headers, body)));
        }
        ChannelType::Slack => Chat::Slack,
        ChannelType::Discord => Chat::Discord,
    };
    let org = OrgId::parse(&delivery.org_id);
    let profile = match &org {
        Some(org) => store.profile(org).await?,
        None => None,
    };
    let Some(profile) = profile else {
        return Ok(None);
    };
    let to = Audience { locale: profile.locale, timezone: profile.timezone, dashboard_url };
    Ok(chat::message(chat, kind, &delivery.detail, &to).map(|text| (Vec::new(), chat::body(chat, &text))))
}
