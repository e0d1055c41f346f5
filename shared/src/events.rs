//! Domain events to EventBridge (`EVENT_BUS_NAME`, source `quota-service`).
//! The `detail` of each is documented in `docs/events.md`.

use std::sync::{Arc, Mutex};

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;

pub const SOURCE: &str = "quota-service";

/// The events this service publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    QuotaThresholdCrossed,
    QuotaExceeded,
    QuotaReset,
    PlanChanged,
    TrialExpired,
    UsagePeriodClosed,
}

impl EventKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::QuotaThresholdCrossed => "QuotaThresholdCrossed",
            EventKind::QuotaExceeded => "QuotaExceeded",
            EventKind::QuotaReset => "QuotaReset",
            EventKind::PlanChanged => "PlanChanged",
            EventKind::TrialExpired => "TrialExpired",
            EventKind::UsagePeriodClosed => "UsagePeriodClosed",
        }
    }
}

/// An event the bus accepted: its kind and `detail`.
pub type Published = (EventKind, serde_json::Value);

#[derive(Debug, thiserror::Error)]
#[error("publishing {0} failed: {1}")]
pub struct PublishError(&'static str, String);

/// Publishes to one bus. `published` keeps what the bus accepted, in
/// order, when enabled (tests and the local server read it).
#[derive(Clone, Debug)]
pub struct Events {
    client: Client,
    bus: String,
    published: Option<Arc<Mutex<Vec<Published>>>>,
}

impl Events {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Events { client, bus: bus.into(), published: None }
    }

    /// Keeps a copy of every accepted event.
    pub fn recording(mut self) -> Self {
        self.published = Some(Arc::default());
        self
    }

    /// The accepted events so far, when recording.
    pub fn published(&self) -> Vec<Published> {
        self.published.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn publish(&self, kind: EventKind, detail: &serde_json::Value) -> Result<(), PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(kind.detail_type())
            .detail(detail.to_string())
            .build();
        let fail = |e: String| PublishError(kind.detail_type(), e);
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string()))?;
        if out.failed_entry_count() > 0 {
            let reason = out.entries().first().and_then(|e| e.error_message()).unwrap_or("rejected");
            return Err(fail(reason.to_string()));
        }
        if let Some(log) = &self.published {
            log.lock().unwrap_or_else(|e| e.into_inner()).push((kind, detail.clone()));
        }
        Ok(())
    }

    /// Publishes where a failure must not undo what already happened (the
    /// consume path): logs it instead.
    pub async fn publish_or_log(&self, kind: EventKind, detail: &serde_json::Value) {
        if let Err(err) = self.publish(kind, detail).await {
            tracing::warn!(error = %err, "event not published");
        }
    }
}
