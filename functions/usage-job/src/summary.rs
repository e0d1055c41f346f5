//! What a run did: the summary each invocation logs and answers, and the
//! error a scheduled run that did not finish its work reports to Lambda.

use quota_shared::domain::org::OrgId;
use serde::{Deserialize, Serialize};

use crate::bounds::LISTED_FAILURES;
use crate::org::OrgOutcome;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub orgs_seen: usize,
    pub emails_sent: usize,
    pub periods_closed: usize,
    pub trials_expired: usize,
    pub snapshots: usize,
    pub failures: usize,
    pub failed_orgs: Vec<String>,
    /// Every org that failed, for the run's next part to do again.
    #[serde(skip)]
    pub(crate) failed_all: Vec<OrgId>,
    /// Events of admin changes found unpublished in orgs' outboxes, and
    /// published.
    pub outbox_events: usize,
    /// Emails SES refused for good (an unverified recipient in its sandbox,
    /// an address it will not take): their notices are done, unsent, and
    /// each is logged with its org.
    pub emails_rejected: usize,
    /// Orgs whose notices were left owed because this invocation's time
    /// for deliveries was up: handed on to the run's next part.
    pub deferred: usize,
    #[serde(skip)]
    pub(crate) deferred_all: Vec<OrgId>,
    /// Scan segments that failed part way: the orgs behind them were not
    /// seen this run.
    pub segments_failed: usize,
    /// Notices and events whose sender vanished after it began the call
    /// (SES, EventBridge): counted as delivered rather than sent twice. Each
    /// is logged with its org.
    pub presumed_delivered: usize,
    /// Which run this invocation worked on, and which part of it.
    pub run: RunPart,
}

/// An invocation's place in its run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunPart {
    pub id: String,
    /// 1 for the invocation that started the run.
    pub part: u32,
    /// This invocation resumed a run an earlier one handed over.
    pub resumed: bool,
    /// The budget ran out: the rest goes on in the next part.
    pub continued: bool,
    /// The hand-over could not be announced: the rest of the run waits for
    /// this invocation's retry.
    pub hand_over_failed: bool,
    /// Orgs that failed here and were handed over with the rest, for the
    /// run's last part to do again.
    pub failures_handed_over: usize,
    /// Orgs earlier parts failed that this part (the last) did again.
    pub retried: usize,
}

impl Summary {
    /// Whether every org this invocation took on was processed, and what it
    /// left is handed over.
    pub fn complete(&self) -> bool {
        self.failures <= self.run.failures_handed_over && self.segments_failed == 0 && !self.run.hand_over_failed
    }

    pub(crate) fn add(&mut self, org: &OrgId, outcome: Result<OrgOutcome, String>) {
        self.orgs_seen += 1;
        let outcome = match outcome {
            Ok(o) => {
                self.emails_sent += o.emails;
                self.periods_closed += o.periods_closed;
                self.trials_expired += usize::from(o.trial_expired);
                self.snapshots += o.snapshot.len();
                self.presumed_delivered += o.presumed;
                self.outbox_events += o.events;
                self.emails_rejected += o.rejected;
                if o.deferred {
                    self.deferred += 1;
                    self.deferred_all.push(org.clone());
                }
                // A notice that failed fails the org; its snapshot is
                // written all the same.
                match o.error {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {}
            Err(error) => {
                tracing::error!(org = %org, error, "daily job failed for org");
                self.failures += 1;
                self.failed_all.push(org.clone());
                if self.failed_orgs.len() < LISTED_FAILURES {
                    self.failed_orgs.push(org.to_string());
                }
            }
        }
    }
}

/// A scheduled run that did not finish its work: reported to Lambda as the
/// invocation's error, so EventBridge retries the run (every step is
/// guarded, so a retry repeats nothing that was done).
#[derive(Debug, thiserror::Error)]
#[error(
    "daily job incomplete: {} org(s) failed, {} scan segment(s) failed, hand-over failed: {}",
    .0.failures, .0.segments_failed, .0.run.hand_over_failed
)]
pub struct Incomplete(pub Summary);
