//! The domain: pure types and rules, no AWS, time passed in.

pub mod audit;
pub mod catalogue;
pub mod channel;
pub mod decision;
pub mod events;
pub mod feature;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod grant;
pub mod idempotency;
pub mod locale;
pub mod messages;
pub mod notice;
pub mod org;
pub mod period;
pub mod report;
pub mod reservation;
pub mod state;
pub mod usage;
pub mod webhook;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// Fills `buf` from the OS's generator (`getrandom`); failing that (no
/// entropy source at all), from the time through a per-process keyed
/// hasher, which keeps ids unique, if guessable. The one source of
/// randomness: ids, claim nonces, audit keys, backoff jitter.
fn fill_random(buf: &mut [u8]) {
    if getrandom::getrandom(buf).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_i64(Utc::now().timestamp_nanos_opt().unwrap_or_default());
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// A random number.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    fill_random(&mut buf);
    u64::from_le_bytes(buf)
}

/// `bytes` random bytes as lower-case hex, for ids.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one date-time format of the API: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Largest count or limit the service accepts: 2^53 − 1, exact in every JSON
/// client (see [`json_integer`]).
pub const MAX_COUNT: i64 = 9_007_199_254_740_991;

/// A JSON number as an integer, as JSON Schema reads it: `5`, and `5.0` or
/// `5e0` too (a number with no fraction), within what a double holds exactly.
pub fn json_integer(value: &serde_json::Value) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    value.as_i64().or_else(|| {
        let f = value.as_f64()?;
        (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
    })
}

/// For optional request fields that must not be `null` when present: with
/// `#[serde(default, deserialize_with = "present")]` an absent field is
/// `None` and an explicit `null` is the type's own error.
pub fn present<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(de).map(Some)
}

/// For optional request fields that hold an object: like [`present`], and
/// the value must be a JSON object (serde alone would also read a struct
/// from an array).
pub fn present_object<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(de)?;
    T::deserialize(serde_json::Value::Object(map)).map(Some).map_err(D::Error::custom)
}

pub(crate) fn ser_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn integers_as_json_schema_reads_them() {
        use super::json_integer;
        assert_eq!(json_integer(&json!(5)), Some(5));
        assert_eq!(json_integer(&json!(5.0)), Some(5));
        assert_eq!(json_integer(&json!(-3.0)), Some(-3));
        assert_eq!(json_integer(&json!(9007199254740991.0)), Some(9_007_199_254_740_991));
        for not in [json!(5.5), json!("5"), json!(null), json!(true), json!(1e300), json!([5])] {
            assert_eq!(json_integer(&not), None, "{not}");
        }
    }
}

/// `#[serde(with = "…")]` for a time written as [`rfc3339`] and read from
/// any RFC 3339 text.
pub(crate) mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        super::ser_rfc3339(t, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}
