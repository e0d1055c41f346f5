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

/// Why a token was refused, as the gateway's `www-authenticate` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// The token's claims as API Gateway passes them (every value a string), or
/// why it was refused: malformed, forged, without an integer `exp`, expired,
/// or not yet valid (`nbf`, which must be an integer when present).
pub fn verify(secret: &str, token: &str, now: i64) -> Result<HashMap<String, String>, Refused> {
    verify_claims(secret, token)
        .and_then(|claims| check_times(claims, now))
        .map(|claims| claims.into_iter().map(|(k, v)| (k, claim_text(v))).collect())
}

fn verify_claims(secret: &str, token: &str) -> Result<serde_json::Map<String, serde_json::Value>, Refused> {
    decode(secret, token).ok_or(Refused("the token is malformed or its signature is invalid"))
}

fn check_times(
    claims: serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, Refused> {
    match claims.get("exp") {
        None => return Err(Refused("the token has no exp claim")),
        Some(exp) => match exp.as_i64() {
            None => return Err(Refused("the token's exp claim is not an integer")),
            Some(exp) if exp <= now => return Err(Refused("the token has expired")),
            Some(_) => {}
        },
    }
    match claims.get("nbf").map(serde_json::Value::as_i64) {
        Some(None) => Err(Refused("the token's nbf claim is not an integer")),
        Some(Some(nbf)) if nbf > now => Err(Refused("the token is not valid yet")),
        _ => Ok(claims),
    }
}

/// A claim as the gateway hands it to the function: strings as they are,
/// everything else as text (`null`, `true`, `12`, arrays as `[a b]`).
fn claim_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s,
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.into_iter().map(claim_text).collect();
            format!("[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

fn decode(secret: &str, token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
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
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
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
        assert!(verify("other", &token, 1000).is_err(), "wrong secret");
        assert_eq!(verify("s3cret", &token, 2000), Err(Refused("the token has expired")));
        // Same signature, other claims: a forgery.
        let (header, rest) = token.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let admin = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","scope":"quota:admin","exp":2000}"#);
        assert!(verify("s3cret", &format!("{header}.{admin}.{signature}"), 1000).is_err());
        assert!(verify("s3cret", &format!("{token}.x"), 1000).is_err());
        assert!(verify("s3cret", "a.b", 1000).is_err());
        assert!(verify("s3cret", "", 1000).is_err());
    }

    #[test]
    fn times_are_checked_as_the_gateway_checks_them() {
        let check = |claims: serde_json::Value| verify("k", &mint("k", &claims), 1000);
        assert_eq!(check(serde_json::json!({"sub": "a"})), Err(Refused("the token has no exp claim")));
        assert_eq!(
            check(serde_json::json!({"sub": "a", "exp": 2000.5})),
            Err(Refused("the token's exp claim is not an integer"))
        );
        assert_eq!(
            check(serde_json::json!({"sub": "a", "exp": "2000"})),
            Err(Refused("the token's exp claim is not an integer"))
        );
        assert_eq!(
            check(serde_json::json!({"sub": "a", "exp": 2000, "nbf": 1.5})),
            Err(Refused("the token's nbf claim is not an integer"))
        );
        assert_eq!(
            check(serde_json::json!({"sub": "a", "exp": 2000, "nbf": 1001})),
            Err(Refused("the token is not valid yet"))
        );
        assert!(check(serde_json::json!({"sub": "a", "exp": 2000, "nbf": 1000})).is_ok());
    }

    #[test]
    fn non_string_claims_arrive_as_text() {
        let claims = serde_json::json!({"sub": "a", "exp": 2000, "org_id": null, "n": 12, "b": true, "l": ["x", "y"]});
        let got = verify("k", &mint("k", &claims), 1000).unwrap();
        assert_eq!((got["org_id"].as_str(), got["n"].as_str(), got["b"].as_str()), ("null", "12", "true"));
        assert_eq!(got["l"], "[x y]");
    }
}
