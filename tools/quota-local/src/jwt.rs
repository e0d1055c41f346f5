//! HS256 tokens for local runs, verified as API Gateway's JWT authorizer
//! would verify the real ones (signature, `exp`, `nbf`).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs `claims` with `secret`.
pub fn mint(secret: &str, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The token's claims as API Gateway passes them (every value a string),
/// or `None` when the token is malformed, forged, expired or not yet valid.
pub fn verify(secret: &str, token: &str, now: i64) -> Option<HashMap<String, String>> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{}.{payload}", token.rsplit_once('.')?.0.split_once('.')?.0).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    if claims.get("exp").and_then(|v| v.as_i64()).is_some_and(|exp| exp <= now) {
        return None;
    }
    if claims.get("nbf").and_then(|v| v.as_i64()).is_some_and(|nbf| nbf > now) {
        return None;
    }
    Some(
        claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let claims = serde_json::json!({"sub": "alice", "scope": "quota:read", "exp": 2000});
        let token = mint("s3cret", &claims);
        let got = verify("s3cret", &token, 1000).unwrap();
        assert_eq!(got["sub"], "alice");
        assert_eq!(got["exp"], "2000");
        assert!(verify("other", &token, 1000).is_none(), "wrong secret");
        assert!(verify("s3cret", &token, 2000).is_none(), "expired");
        // Same signature, other claims: a forgery.
        let (header, rest) = token.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let admin = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","scope":"quota:admin","exp":2000}"#);
        assert!(verify("s3cret", &format!("{header}.{admin}.{signature}"), 1000).is_none());
        assert!(verify("s3cret", &format!("{token}.x"), 1000).is_none());
        assert!(verify("s3cret", "a.b", 1000).is_none());
        assert!(verify("s3cret", "", 1000).is_none());
    }
}
