//! The domain: pure types and rules, no AWS, time passed in.

pub mod catalogue;
pub mod messages;
pub mod notice;
pub mod org;
pub mod period;
pub mod report;
pub mod usage;

use chrono::{DateTime, SecondsFormat, Utc};

/// The one date-time format of the API: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn ser_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}
