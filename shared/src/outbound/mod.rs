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

pub mod chat;
pub mod http;
pub mod local;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::domain::channel::{Channel, ChannelType, secret_key};
use crate::domain::events::EventKind;
use crate::domain::org::OrgId;
use crate::domain::webhook::{Attempt, Delivery, DeliveryStatus, after_attempt, signature, webhook_id};
use crate::store::{Opened, Store, StoreError};
use chat::{Audience, Chat};
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

/// What makes an event the same event when the service publishes it
/// again (it does, at least once, on purpose: docs/events.md): its `eventId`
/// where it has one, else what docs/events.md says to deduplicate it on;
/// the bus's id for the publication only for an event with neither.
pub fn event_key(event: &BusEvent) -> String {
    let d = &event.detail;
    let field = |name: &str| d[name].as_str().map(str::to_string);
    let kind = event.kind.detail_type();
    field("eventId")
        .or_else(|| match event.kind {
            EventKind::UsagePeriodClosed => field("periodId"),
            EventKind::TrialExpired => Some(format!("{}/{}", field("orgId")?, field("trialEndedAt")?)),
            EventKind::GrantExpired => field("grantId"),
            _ => None,
        })
        .map_or_else(|| format!("bus/{}", event.id), |key| format!("{kind}/{key}"))
}

/// Queues one delivery of `event` per channel of its org that takes it,
/// each with its record: once per event ([`event_key`]) and channel,
/// however often the event is handed over. How many were queued.
pub async fn fan_out(store: &Store, event: &BusEvent, queue: &dyn Queue) -> Result<usize, FanOutError> {
    let now = Utc::now();
    let Some(org) = event.detail["orgId"].as_str().and_then(OrgId::parse) else {
        return Ok(0);
    };
    let key = event_key(event);
    let mut queued = 0;
    for channel in store.channels(&org).await?.iter().filter(|c| c.takes(event.kind)) {
        let delivery = Delivery {
            webhook_id: webhook_id(&channel.id, &key),
            org_id: org.to_string(),
            channel_id: channel.id.clone(),
            kind: event.kind.detail_type().to_string(),
            time: event.time,
            detail: event.detail.clone(),
        };
        match store.open_delivery(&org, &channel.id, &delivery.webhook_id, &delivery.kind, now).await? {
            Opened::New => {}
            Opened::Existing { queued: true, .. } => continue,
            Opened::Existing { status, .. } if status.settled() => continue,
            // Made by a hand-over that has not marked it queued: queued here
            // only once that one has had its time (it stopped); until then
            // the event comes back later rather than start a second chain.
            Opened::Existing { .. } => {
                if !store.claim_queueing(&org, &channel.id, &delivery.webhook_id, now).await? {
                    return Err(FanOutError::Busy(delivery.webhook_id));
                }
            }
        }
        queue.send(&delivery).await.map_err(FanOutError::Queue)?;
        store.mark_queued(&org, &channel.id, &delivery.webhook_id).await?;
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
    #[error("delivery {0} is being queued by another hand-over of its event")]
    Busy(String),
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

/// The next attempt of `delivery`, recorded on its record, which numbers
/// it (a queue's receive count also counts receives that made none). On
/// the wall clock, whatever clock the service runs on: a receiver checks
/// the signature's timestamp against its own.
pub async fn attempt(
    store: &Store,
    sender: &Sender,
    dashboard_url: &str,
    delivery: &Delivery,
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
        // Dead-lettered by the attempt that failed it: nothing more.
        DeliveryStatus::Failed => return Ok(Outcome::Dropped("failed before")),
        DeliveryStatus::Pending | DeliveryStatus::Retrying => {}
    }
    let Some(channel) = store.channel(&org, &delivery.channel_id).await? else {
        return Ok(Outcome::Dropped("the channel was removed"));
    };
    let Some(request) = render(store, &channel, delivery, dashboard_url, now).await? else {
        // Shown as failed in the deliveries list, with why.
        let why = "not sent: the channel does not take this event, or its secret is unreadable";
        let attempt = Attempt { at: now, response_code: None, error: Some(why.into()) };
        store.record_attempt(&org, &delivery.channel_id, &record, &attempt, DeliveryStatus::Failed).await?;
        return Ok(Outcome::Dropped(why));
    };
    let (headers, body) = request;
    let answer = sender.post(&channel.url, &headers, body).await;
    let result = Attempt {
        at: now,
        response_code: answer.as_ref().ok().copied(),
        error: answer.err().map(|e| e.chars().take(300).collect()),
    };
    let number = record.attempts + 1;
    let (status, wait) = after_attempt(&result, number);
    if !store.record_attempt(&org, &delivery.channel_id, &record, &result, status).await? {
        // Another copy of it recorded an attempt meanwhile: that one goes on.
        let now_delivered = store.delivery(&org, &delivery.channel_id, &delivery.webhook_id).await?;
        return Ok(match now_delivered.map(|r| r.status) {
            Some(DeliveryStatus::Delivered) => Outcome::Delivered,
            _ => Outcome::Dropped("a copy of this delivery is ahead of this one"),
        });
    }
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
            // Never signed with anything weaker than the channel's own key.
            let Some(key) = channel.secret.as_deref().and_then(secret_key) else {
                tracing::error!(channel = channel.id, "a webhook channel without a readable secret: not sent");
                return Ok(None);
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, kind: EventKind, detail: serde_json::Value) -> BusEvent {
        BusEvent { id: id.into(), kind, time: "2026-03-18T09:12:45Z".parse().unwrap(), detail }
    }

    #[test]
    fn an_event_published_again_is_the_same_event() {
        let twice = |kind, detail: serde_json::Value| {
            (event_key(&event("bus-1", kind, detail.clone())), event_key(&event("bus-2", kind, detail)))
        };
        let (a, b) = twice(EventKind::GrantAdded, json!({ "eventId": "evt_1", "orgId": "acme" }));
        assert_eq!(a, b, "the outbox's eventId");
        let (a, b) =
            twice(EventKind::UsagePeriodClosed, json!({ "orgId": "acme", "periodId": "acme/2026-03-01T00:00:00Z" }));
        assert_eq!(a, b, "its periodId");
        let (a, b) = twice(EventKind::TrialExpired, json!({ "orgId": "acme", "trialEndedAt": "2026-03-31T08:00:00Z" }));
        assert_eq!(a, b, "its org and trial end");
        let (a, b) = twice(EventKind::GrantExpired, json!({ "orgId": "acme", "grantId": "grt_1" }));
        assert_eq!(a, b, "its grant");
        let other = event_key(&event("bus-1", EventKind::GrantAdded, json!({ "eventId": "evt_2" })));
        assert_ne!(other, event_key(&event("bus-1", EventKind::GrantAdded, json!({ "eventId": "evt_1" }))));
    }
}
