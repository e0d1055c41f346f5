//! The DynamoDB store: the one adapter between the domain and the table.
//! Every state change is one conditional write, or one transaction where two
//! items must change together; nothing reads a value and writes back a value
//! computed from it without a condition pinning it.
//!
//! | file | what |
//! |---|---|
//! | `items` | the table's items and their mapping to domain types |
//! | `sdk` | the request patterns, each once: conditional outcome, transaction, put-if-absent, prefix query, backoff |
//! | `orgs` | org reads, create and update |
//! | `counters` | counter reads, release, set and reset |
//! | `current` | bringing a counter up to date: written, nothing expired on it (the sweep), its period current |
//! | `admit` | the admission loop: consume and reserve, one conditional write (keyed: one transaction) |
//! | `rollover` | closing a period for billing and starting the next |
//! | `idempotency` | a key's record, and the keyed write's transaction |
//! | `reservations` | commit and release |
//! | `grants` | grants added and revoked |
//! | `audit` | the audit log |
//! | `channels` | an org's notification channels and their deliveries |
//! | `claim`, `notice_claims` | the claim protocol, and the notices that use it |
//! | `close_claims` | the period-close event's claim, sending and marks |
//! | `job` | the daily job's index scan, pending closed periods, continued runs |
//! | `snapshots` | daily snapshots and the history read |

mod admit;
mod attrs;
mod audit;
mod channels;
mod claim;
mod close_claims;
mod counters;
mod current;
mod error;
mod grants;
mod idempotency;
mod items;
pub mod job;
pub mod notice_claims;
mod orgs;
mod outbox;
mod reservations;
mod rollover;
pub mod schema;
mod sdk;
pub mod snapshots;

pub use admit::Reserved;
pub use channels::{ChannelAdded, Opened};
pub use claim::{Claim, Lease, Settled};
pub use counters::CountChange;
pub use error::{BoxError, StoreError, root_cause};
pub use grants::{Granted, Revoked};
pub use orgs::PutOrg;
pub use reservations::{End, Ended};
pub use sdk::Work;

use aws_sdk_dynamodb::Client;

use crate::domain::catalogue::{Catalogue, ResourceKind};
use crate::domain::org::OrgId;

/// One counter, named: its org, resource and kind, and the catalogue that
/// says what it is before anything was written to it. Every write to a
/// counter takes one, and brings the counter up to date the same way
/// (`current`: `Store::make_current`).
#[derive(Debug, Clone, Copy)]
pub struct CounterRef<'a> {
    pub org: &'a OrgId,
    pub resource: &'a str,
    pub kind: ResourceKind,
    pub catalogue: &'a Catalogue,
}

/// The table, through two clients built from one configuration:
///
/// - `once`, for single-item writes: a write is never sent again once
///   DynamoDB may have applied it ([`crate::clients::SentOnce`]); its
///   outcome is then unknown, and an API request says so;
/// - `retrying`, with every retry the SDK makes: reads, batches of puts that
///   overwrite, and writes that recognise their own repeat (a job run's
///   hand-over finds its own record). Transactions go through `once` too:
///   `sdk::transact` sends them again itself, under their token, and must
///   see every attempt that may have been applied.
#[derive(Clone, Debug)]
pub struct Store {
    once: Client,
    retrying: Client,
    table: String,
}

impl Store {
    /// `retrying` is the client as configured (`crate::clients::dynamodb`);
    /// the single-item writes' client is derived from it.
    pub fn new(retrying: Client, table: impl Into<String>) -> Self {
        let once = retrying.config().to_builder().retry_classifier(crate::clients::SentOnce).build();
        Store { once: Client::from_conf(once), retrying, table: table.into() }
    }

    /// The client as configured, with the SDK's retries.
    pub fn client(&self) -> &Client {
        &self.retrying
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
