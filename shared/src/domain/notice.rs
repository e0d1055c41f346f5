//! Notices: which threshold of a resource is owed an email, what sending one
//! records, and the state of a notice while it is being sent. Pure; the
//! store keeps this state on the items (`store::notice_claims`).

use super::catalogue::Enforcement;

/// The notification thresholds (percent) a resource has: 80 and 100, and for
/// `soft` resources every further 10 up to `highest`.
pub fn threshold_reached(used: i64, limit: Option<i64>, enforcement: Enforcement) -> Option<u32> {
    let limit = limit.filter(|l| *l > 0)?;
    let pct = i128::from(used) * 100 / i128::from(limit);
    match (pct, enforcement) {
        (p, _) if p < 80 => None,
        (p, _) if p < 100 => Some(80),
        (_, Enforcement::Hard) => Some(100),
        (p, Enforcement::Soft) => Some(u32::try_from(p / 10 * 10).unwrap_or(u32::MAX / 10 * 10)),
    }
}

/// The threshold still owed for `used`: the highest one reached, unless it
/// (or a higher one) was already notified. Lower ones count as sent with it.
pub fn threshold_owed(used: i64, limit: Option<i64>, enforcement: Enforcement, notified: &[u32]) -> Option<u32> {
    let reached = threshold_reached(used, limit, enforcement)?;
    (!notified.iter().any(|n| *n >= reached)).then_some(reached)
}

/// What to mark when `threshold` is sent: it, and 80 and 100 below it. Every
/// lower threshold counts as sent once a higher one is (a claim needs the
/// highest marked threshold below its own), so the steps in between need no
/// entry, and a jump to 10 000 % stores three numbers, not a thousand.
pub fn marks_for(threshold: u32) -> Vec<u32> {
    let mut out: Vec<u32> = [80, 100].into_iter().filter(|t| *t < threshold).collect();
    out.push(threshold);
    out
}

/// A claim's value: when it lapses, in microseconds since the epoch, with a
/// random part below the second, so that two claims taken in one second
/// are two claims.
pub const LEASE_SCALE: i64 = 1_000_000;

/// A notice (or event) claimed by a sender and not yet settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// The claim's value (see [`LEASE_SCALE`]): when it lapses, and which
    /// claim it is.
    pub until: i64,
    /// The threshold claimed (threshold notices only).
    pub threshold: Option<u32>,
    /// The sender began the external call (SES, EventBridge). A claim whose
    /// sender vanished after that is presumed delivered; one whose sender
    /// vanished before is sent again.
    pub sending: bool,
}

impl InFlight {
    /// Whether the claim has lapsed at `now` (epoch seconds): its sender is gone.
    pub fn lapsed(&self, now: i64) -> bool {
        self.until < now.saturating_mul(LEASE_SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        use Enforcement::*;
        assert_eq!(threshold_reached(79, Some(100), Hard), None);
        assert_eq!(threshold_reached(80, Some(100), Hard), Some(80));
        assert_eq!(threshold_reached(100, Some(100), Hard), Some(100));
        assert_eq!(threshold_reached(150, Some(100), Hard), Some(100));
        assert_eq!(threshold_reached(119, Some(100), Soft), Some(110));
        assert_eq!(threshold_reached(120, Some(100), Soft), Some(120));
        assert_eq!(threshold_reached(5, None, Soft), None);
        // 70 % → 115 %: one notification, for 110.
        assert_eq!(threshold_owed(115, Some(100), Soft, &[]), Some(110));
        assert_eq!(threshold_owed(112, Some(100), Soft, &[110]), None);
        assert_eq!(threshold_owed(80, Some(100), Hard, &[]), Some(80));
        assert_eq!(threshold_owed(81, Some(100), Hard, &[80]), None);
        assert_eq!(threshold_owed(100, Some(100), Hard, &[80]), Some(100));
        assert_eq!(threshold_owed(79, Some(100), Hard, &[]), None);
    }

    #[test]
    fn marks_stay_small_whatever_the_threshold() {
        assert_eq!(marks_for(80), vec![80]);
        assert_eq!(marks_for(100), vec![80, 100]);
        assert_eq!(marks_for(130), vec![80, 100, 130]);
        assert_eq!(marks_for(u32::MAX), vec![80, 100, u32::MAX]);
    }

    #[test]
    fn a_claim_lapses_after_its_time() {
        let claim = InFlight { until: 100 * LEASE_SCALE + 123, threshold: Some(80), sending: false };
        assert!(!claim.lapsed(100));
        assert!(claim.lapsed(101));
    }
}
