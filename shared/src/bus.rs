//! Publishing the service's events (`crate::domain::events`) to
//! EventBridge: the bus in `EVENT_BUS_NAME`, source `quota-service` (the
//! job's internal hand-over: `quota-service.job`).

use std::sync::{Arc, Mutex};

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

pub use crate::domain::events::{Event, EventKind};

/// An event the bus accepted: its kind and `detail`.
pub type Published = (EventKind, serde_json::Value);

/// A failed publish, and whether the events may still have been accepted.
#[derive(Debug, thiserror::Error)]
#[error("publishing {kinds} failed: {detail}")]
pub struct PublishError {
    kinds: String,
    detail: String,
    /// The request may have reached EventBridge (a timeout, say): the events
    /// may have been published.
    pub outcome_unknown: bool,
}

/// Publishes to one bus. `published` keeps what the bus accepted, in
/// order, when enabled (tests and the local server read it). A function
/// that publishes nothing has no client ([`EventBus::absent`]).
#[derive(Clone, Debug)]
pub struct EventBus {
    client: Option<Client>,
    bus: String,
    published: Option<Arc<Mutex<Vec<Published>>>>,
    tap: Option<Tap>,
}

/// Where the local server and the tests hand what the bus accepted, as an
/// EventBridge rule hands it on in AWS (`crate::outbound::local`).
#[derive(Clone)]
struct Tap(Arc<dyn Fn(crate::outbound::BusEvent) + Send + Sync>);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl EventBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBus { client: Some(client), bus: bus.into(), published: None, tap: None }
    }

    /// Without a client: every publish fails, saying so.
    pub fn absent(bus: impl Into<String>) -> Self {
        EventBus { client: None, bus: bus.into(), published: None, tap: None }
    }

    /// Keeps a copy of every accepted event.
    pub fn recording(mut self) -> Self {
        self.published = Some(Arc::default());
        self
    }

    /// Hands every accepted event, with the id EventBridge gave it, to `tap`.
    pub fn tapped(mut self, tap: impl Fn(crate::outbound::BusEvent) + Send + Sync + 'static) -> Self {
        self.tap = Some(Tap(Arc::new(tap)));
        self
    }

    /// The accepted events so far, when recording.
    pub fn published(&self) -> Vec<Published> {
        self.published.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub async fn publish(&self, event: &impl Event) -> Result<(), PublishError> {
        self.publish_all(&[event.entry()]).await
    }

    /// Publishes several events in one `PutEvents` (up to 10): one call, one
    /// outcome. Not retried by the SDK (see `timeouts::EVENTBRIDGE`).
    pub async fn publish_all(&self, events: &[(EventKind, serde_json::Value)]) -> Result<(), PublishError> {
        let entries: Vec<PutEventsRequestEntry> = events
            .iter()
            .map(|(kind, detail)| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(kind.source())
                    .detail_type(kind.detail_type())
                    .detail(detail.to_string())
                    .build()
            })
            .collect();
        let kinds = events.iter().map(|(k, _)| k.detail_type()).collect::<Vec<_>>().join(", ");
        let Some(client) = &self.client else {
            return Err(PublishError {
                kinds,
                detail: "this function has no EventBridge client".into(),
                outcome_unknown: false,
            });
        };
        let out = client.put_events().set_entries(Some(entries)).send().await.map_err(|e| PublishError {
            kinds: kinds.clone(),
            detail: crate::store::root_cause(&e),
            outcome_unknown: crate::clients::outcome_unknown(&e),
        })?;
        if out.failed_entry_count() > 0 {
            // Entries are accepted or refused one by one; a refused one is
            // published again with the others, so consumers dedupe anyway.
            let reason = out.entries().iter().find_map(|e| e.error_message()).unwrap_or("rejected");
            return Err(PublishError { kinds, detail: reason.to_string(), outcome_unknown: false });
        }
        if let Some(log) = &self.published {
            log.lock().unwrap_or_else(|e| e.into_inner()).extend(events.iter().cloned());
        }
        if let Some(Tap(tap)) = &self.tap {
            for (i, (kind, detail)) in events.iter().enumerate() {
                let id = out.entries().get(i).and_then(|e| e.event_id()).map(str::to_string);
                let id = id.unwrap_or_else(|| crate::domain::random_hex(16));
                tap(crate::outbound::BusEvent { id, kind: *kind, time: chrono::Utc::now(), detail: detail.clone() });
            }
        }
        Ok(())
    }

    /// Publishes where a failure must not undo what already happened (the
    /// change has committed): logs it instead.
    pub async fn publish_or_log(&self, event: &impl Event) {
        if let Err(err) = self.publish(event).await {
            tracing::warn!(error = %err, "event not published");
        }
    }
}
