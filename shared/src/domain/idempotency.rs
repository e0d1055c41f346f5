//! `Idempotency-Key`: a client's name for one consume, so that a retry
//! counts once. Pure: the key checked, and the fingerprint of the request
//! it names (a retry must be the same request).

use sha2::{Digest, Sha256};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// A checked `Idempotency-Key` and the fingerprint of the request it names.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
    /// Short digest of the key, kept on the counter while it is in flight.
    pub guard: String,
}

impl IdempotencyKey {
    /// A consume's key: 1–255 visible ASCII characters.
    pub fn parse(key: &str, resource: &str, amount: i64) -> Option<Self> {
        Self::naming(key, format!("consume\n{resource}\n{amount}"))
    }

    /// A reserve's key: the same key names one request, consume or reserve.
    pub fn for_reserve(key: &str, resource: &str, amount: i64, ttl_seconds: i64) -> Option<Self> {
        Self::naming(key, format!("reserve\n{resource}\n{amount}\n{ttl_seconds}"))
    }

    /// A grant's key (an admin's retry must not add it twice).
    pub fn for_grant(key: &str, request: &super::grant::GrantRequest) -> Option<Self> {
        let expiry = request.expires_at.map(super::rfc3339).unwrap_or_default();
        let r = request;
        Self::naming(key, format!("grant\n{}\n{}\n{expiry}\n{}", r.resource, r.amount, r.reason))
    }

    /// An admin write's key: `request` names the write (its route and the
    /// fields that make it what it is).
    pub fn for_admin(key: &str, request: &str) -> Option<Self> {
        Self::naming(key, format!("admin\n{request}"))
    }

    fn naming(key: &str, request: String) -> Option<Self> {
        let ok = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| {
            let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            let fingerprint = hex(&Sha256::digest(request));
            let guard = hex(&Sha256::digest(key.as_bytes())[..12]);
            IdempotencyKey { key: key.to_string(), fingerprint, guard }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_and_name_their_request() {
        assert!(IdempotencyKey::parse("", "conversations", 1).is_none());
        assert!(IdempotencyKey::parse("a b", "conversations", 1).is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(256), "conversations", 1).is_none());
        let a = IdempotencyKey::parse("req-1", "conversations", 1).unwrap();
        let b = IdempotencyKey::parse("req-1", "conversations", 2).unwrap();
        assert_eq!(a.key, b.key);
        assert_ne!(a.fingerprint, b.fingerprint, "another amount is another request");
        assert_eq!(a.guard, b.guard, "the guard names the key alone");
        let reserve = IdempotencyKey::for_reserve("req-1", "conversations", 1, 600).unwrap();
        assert_ne!(reserve.fingerprint, a.fingerprint, "a reserve is another request than a consume");
    }
}
