//! The in-process queue of `quota-local` and the tests: what the bus
//! accepted is handed here ([`crate::bus::EventBus::tapped`]), fanned out,
//! and each delivery is attempted in a task of its own, waiting out its
//! backoff in between, as SQS makes the Lambda do in AWS.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{BusEvent, Outcome, Queue, Sender, attempt, fan_out};
use crate::domain::webhook::{Delivery, RETRY_DELAYS};
use crate::store::Store;

enum Job {
    Event(BusEvent),
    Attempt(Delivery),
}

/// Hands events to the worker [`start`] runs.
#[derive(Clone, Debug)]
pub struct Handle {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Event(e) => write!(f, "event {}", e.id),
            Job::Attempt(d) => write!(f, "an attempt of {}", d.webhook_id),
        }
    }
}

impl Handle {
    /// An event the bus accepted.
    pub fn event(&self, event: BusEvent) {
        let _ = self.jobs.send(Job::Event(event));
    }
}

impl Queue for Handle {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), String>> {
        let sent =
            self.jobs.send(Job::Attempt(delivery.clone())).map_err(|_| "the local queue has stopped".to_string());
        Box::pin(async move { sent })
    }
}

/// How the local queue waits between attempts: the deployed schedule
/// ([`RETRY_DELAYS`]) times `scale` (the tests shorten it).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub scale: f64,
}

impl Backoff {
    pub const DEPLOYED: Backoff = Backoff { scale: 1.0 };

    fn wait(self, wait: Duration) -> Duration {
        wait.mul_f64(self.scale.max(0.0))
    }

    /// The whole schedule's wait, scaled: how long a delivery that never
    /// succeeds takes to fail.
    pub fn total(self) -> Duration {
        self.wait(RETRY_DELAYS.iter().sum())
    }
}

/// Starts the worker: events in, fanned out, each delivery attempted in a
/// task of its own until it settles. Stops when every [`Handle`] is gone.
pub fn start(store: Store, sender: Sender, dashboard_url: String, backoff: Backoff) -> Handle {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = Handle { jobs: tx };
    // The worker holds a weak end only, so that dropping the last handle stops it.
    let requeue = handle.jobs.downgrade();
    let context = Arc::new((store, sender, dashboard_url));
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let Some(jobs) = requeue.upgrade() else { break };
            let context = context.clone();
            tokio::spawn(async move {
                let (store, sender, dashboard_url) = &*context;
                let queue = Handle { jobs: jobs.clone() };
                match job {
                    Job::Event(event) => {
                        if let Err(err) = fan_out(store, &event, &queue).await {
                            tracing::error!(error = %err, event = event.id, "channel fan-out failed");
                        }
                    }
                    Job::Attempt(delivery) => {
                        match attempt(store, sender, dashboard_url, &delivery).await {
                            Ok(Outcome::Retry(wait)) => {
                                tokio::time::sleep(backoff.wait(wait)).await;
                                let _ = jobs.send(Job::Attempt(delivery));
                            }
                            Ok(Outcome::Failed) => {
                                tracing::warn!(webhook = delivery.webhook_id, "channel delivery failed for good");
                            }
                            Ok(Outcome::Delivered | Outcome::Dropped(_)) => {}
                            Err(err) => {
                                // The store failed: the attempt is made again, as SQS would.
                                tracing::error!(error = %err, webhook = delivery.webhook_id, "channel delivery not recorded");
                                tokio::time::sleep(backoff.wait(RETRY_DELAYS[0])).await;
                                let _ = jobs.send(Job::Attempt(delivery));
                            }
                        }
                    }
                }
            });
        }
    });
    handle
}
