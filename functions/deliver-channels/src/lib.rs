//! `deliver-channels`: the orgs' channel deliveries, from one SQS queue that
//! holds two kinds of message:
//!
//! - an **event**, as the EventBridge rule on the service's bus puts it
//!   there (the event's JSON as the body): fanned out into one delivery per
//!   channel that takes it, each sent to the same queue;
//! - a **delivery** (`domain::webhook::Delivery`): one attempt, numbered by
//!   its record. A failure stays in the queue, hidden for the schedule's
//!   wait (`ChangeMessageVisibility`), and is received again; after the last
//!   attempt it is recorded `failed` and moved to the dead-letter queue. The
//!   queue's own redrive (after more receives than attempts) only catches a
//!   message that kept failing before any attempt (the table unreachable).
//!
//! The batch's messages are handled concurrently, each on its own; only the
//! ones that must come back are reported as failures.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::future::BoxFuture;
use quota_shared::Deps;
use quota_shared::domain::events::EventKind;
use quota_shared::domain::webhook::Delivery;
use quota_shared::outbound::{self, BusEvent, Outcome, Queue, Sender};
use quota_shared::store::Store;

/// The SQS client's settings: the shared time bounds (`timeouts::SQS`).
pub fn sqs_config(aws: &aws_types::SdkConfig) -> aws_sdk_sqs::config::Builder {
    let t = &quota_shared::timeouts::SQS;
    aws_sdk_sqs::config::Builder::from(aws)
        .timeout_config(quota_shared::clients::timeout_config(t))
        .retry_config(quota_shared::clients::retry_config(t))
}

pub struct Deliverer {
    store: Store,
    sender: Sender,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letters_url: String,
    dashboard_url: String,
}

/// The queues the deliverer uses: `CHANNEL_QUEUE_URL`, and
/// `CHANNEL_DEAD_LETTER_QUEUE_URL` for deliveries that failed every attempt.
pub struct Queues {
    pub queue_url: String,
    pub dead_letters_url: String,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Done with: deleted from the queue.
    Done,
    /// To be received again (after the visibility timeout it was given).
    Again,
}

impl Deliverer {
    pub fn new(deps: &Deps, sqs: aws_sdk_sqs::Client, queues: Queues, dashboard_url: &str) -> Deliverer {
        Deliverer {
            store: deps.store.clone(),
            sender: Sender::new(deps.net.clone()),
            sqs,
            queue_url: queues.queue_url,
            dead_letters_url: queues.dead_letters_url,
            dashboard_url: dashboard_url.to_string(),
        }
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let handled = futures::future::join_all(event.records.iter().map(|m| self.message(m))).await;
        let mut response = SqsBatchResponse::default();
        for (message, handled) in event.records.iter().zip(handled) {
            if handled == Handled::Again {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    pub async fn message(&self, message: &SqsMessage) -> Handled {
        let body = message.body.as_deref().unwrap_or_default();
        if let Ok(delivery) = serde_json::from_str::<Delivery>(body) {
            return self.delivery(message, &delivery).await;
        }
        match serde_json::from_str::<EventBridgeEvent<serde_json::Value>>(body) {
            Ok(event) => self.event(event).await,
            Err(err) => {
                // Neither kind: nothing will ever make sense of it.
                tracing::error!(error = %err, message = message.message_id, "not an event nor a delivery; dropped");
                Handled::Done
            }
        }
    }

    async fn event(&self, event: EventBridgeEvent<serde_json::Value>) -> Handled {
        let Some(kind) = EventKind::parse(&event.detail_type) else {
            tracing::warn!(detail_type = event.detail_type, "not a channel event; dropped");
            return Handled::Done;
        };
        let id = event.id.unwrap_or_default();
        let event = BusEvent { id, kind, time: event.time.unwrap_or_else(Utc::now), detail: event.detail };
        match outbound::fan_out(&self.store, &event, self).await {
            Ok(_) => Handled::Done,
            Err(err) => {
                tracing::error!(error = %err, event = event.id, "fan-out failed; the event comes back");
                Handled::Again
            }
        }
    }

    async fn delivery(&self, message: &SqsMessage, delivery: &Delivery) -> Handled {
        let outcome = outbound::attempt(&self.store, &self.sender, &self.dashboard_url, delivery).await;
        let wait = match outcome {
            Ok(Outcome::Delivered | Outcome::Dropped(_)) => return Handled::Done,
            Ok(Outcome::Retry(wait)) => wait,
            Ok(Outcome::Failed) => return self.dead_letter(message).await,
            Err(err) => {
                tracing::error!(error = %err, webhook = delivery.webhook_id, "delivery not recorded; it comes back");
                return Handled::Again;
            }
        };
        let receipt = message.receipt_handle.clone().unwrap_or_default();
        let hidden = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(wait.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(err) = hidden {
            // It comes back after the queue's own visibility timeout instead.
            tracing::warn!(error = %quota_shared::store::root_cause(&err), "backoff not set");
        }
        Handled::Again
    }
}

impl Deliverer {
    /// The last attempt failed (recorded `failed`): the message goes to the
    /// dead-letter queue, and off this one.
    async fn dead_letter(&self, message: &SqsMessage) -> Handled {
        let body = message.body.clone().unwrap_or_default();
        match self.sqs.send_message().queue_url(&self.dead_letters_url).message_body(body).send().await {
            Ok(_) => Handled::Done,
            Err(err) => {
                // Back it comes; the queue's redrive takes it after enough receives.
                tracing::error!(error = %quota_shared::store::root_cause(&err), "not dead-lettered; it comes back");
                Handled::Again
            }
        }
    }
}

impl Queue for Deliverer {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = serde_json::to_string(delivery).map_err(|e| e.to_string())?;
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| quota_shared::store::root_cause(&e))
        })
    }
}
