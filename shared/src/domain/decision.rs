//! The answer to "may this org use `amount` more of this resource?": allowed,
//! or refused with a reason and a localized message. Pure.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalogue::Catalogue;
use super::messages;
use super::usage::{Counter, Reason, Usage};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    pub usage: Usage,
}

impl Decision {
    /// The decision for `amount` more units on a counter as it stands (`at(now)`).
    pub fn evaluate(counter: &Counter, amount: i64, catalogue: &Catalogue, now: DateTime<Utc>) -> Decision {
        let reason = counter.refusal(amount, now);
        Decision::with_reason(counter, reason, catalogue, now)
    }

    pub fn with_reason(
        counter: &Counter,
        reason: Option<Reason>,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Decision {
        Decision {
            allowed: reason.is_none(),
            reason,
            message: reason.map(|r| messages::refusal(r, &counter.resource, counter.kind, counter.locale, catalogue)),
            usage: counter.usage(now),
        }
    }
}

/// What a consume came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Consumed {
    /// Recorded. `before` is the count this consume started from, when the
    /// write itself told (not with an idempotency key: transactions return
    /// no values, and a later read may include other consumes).
    Admitted { counter: Counter, before: Option<i64> },
    /// A retry of an admitted consume: nothing recorded again.
    Replayed { counter: Counter },
    /// Nothing recorded.
    Refused { counter: Counter, reason: Reason },
}

impl Consumed {
    pub fn counter(&self) -> &Counter {
        match self {
            Consumed::Admitted { counter, .. } | Consumed::Replayed { counter } | Consumed::Refused { counter, .. } => {
                counter
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalogue::Enforcement;
    use crate::domain::fixtures::{counter, now};
    use crate::domain::locale::Locale;
    use crate::domain::usage::Status;

    #[test]
    fn hard_limit_refuses_the_unit_past_the_limit() {
        let c = counter(100, Some(100), Enforcement::Hard);
        let d = Decision::evaluate(&c, 1, Catalogue::builtin(), now());
        assert!(!d.allowed);
        assert_eq!(d.reason, Some(Reason::QuotaExceeded));
        assert_eq!(d.message.as_deref(), Some("Monthly quota reached. Upgrade to continue."));
        assert!(d.usage.blocked);
        assert_eq!(d.usage.remaining, Some(0));
        assert!(Decision::evaluate(&counter(99, Some(100), Enforcement::Hard), 1, Catalogue::builtin(), now()).allowed);
        assert!(
            !Decision::evaluate(&counter(99, Some(100), Enforcement::Hard), 2, Catalogue::builtin(), now()).allowed
        );
    }

    #[test]
    fn soft_limit_allows_and_counts_overage() {
        let c = counter(115, Some(100), Enforcement::Soft);
        let d = Decision::evaluate(&c, 1, Catalogue::builtin(), now());
        assert!(d.allowed);
        assert_eq!(d.usage.overage, 15);
        assert_eq!(d.usage.remaining, Some(0));
        assert_eq!(d.usage.percentage, Some(115.0));
        assert_eq!(d.usage.status, Status::Exceeded);
        assert!(!d.usage.blocked);
    }

    #[test]
    fn expired_trial_wins_over_room_left() {
        let mut c = counter(0, Some(100), Enforcement::Hard);
        c.trial_ends_at = Some(now());
        let d = Decision::evaluate(&c, 1, Catalogue::builtin(), now());
        assert_eq!(d.reason, Some(Reason::TrialExpired));
        assert!(d.usage.blocked);
        c.locale = Locale::Da;
        let d = Decision::evaluate(&c, 1, Catalogue::builtin(), now());
        assert_eq!(d.message.as_deref(), Some("Gratis prøveperiode udløbet. Opgrader for at fortsætte."));
    }
}
