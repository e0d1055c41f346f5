//! An org's state as one Query reads it: its profile, every counter it has,
//! the trial notice's state and the events its outbox still holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::catalogue::Catalogue;
use super::events::Pending;
use super::notice::InFlight;
use super::org::OrgProfile;
use super::usage::{Counter, CounterSettings};

/// An org's profile and every counter it has: what one Query returns.
#[derive(Debug, Clone)]
pub struct OrgState {
    pub profile: OrgProfile,
    pub version: i64,
    pub counters: BTreeMap<String, Counter>,
    /// When the trial-ended email went out, if it did.
    pub trial_notified_at: Option<String>,
    /// The trial notice's claim, while one is being sent.
    pub trial_notice: Option<InFlight>,
    /// Events admin writes made that are still to be published.
    pub outbox: Vec<Pending>,
}

impl OrgState {
    /// Every counter of the org as it stands at `now`, in catalogue order,
    /// including those not written yet.
    pub fn counters_at(&self, catalogue: &Catalogue, now: DateTime<Utc>) -> Vec<Counter> {
        catalogue
            .resources
            .iter()
            .filter_map(|(name, def)| match self.counters.get(name) {
                Some(c) => Some(c.at(now)),
                None => {
                    let settings = CounterSettings::of(&self.profile, name, catalogue)?;
                    Some(Counter::fresh(&self.profile.org_id, name, def.kind, &settings, now))
                }
            })
            .collect()
    }
}
