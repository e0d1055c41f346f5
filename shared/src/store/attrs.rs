//! The bottom of the store: an item as the SDK holds it, and the helpers
//! that read and write its attributes. Everything else in the store builds
//! on these; this file uses nothing of the store.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

pub type Item = HashMap<String, AttributeValue>;

pub fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

pub(crate) fn get_time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    get_n(item, name).and_then(|secs| DateTime::from_timestamp(secs, 0))
}

pub(crate) fn get_rfc3339(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    get_s(item, name).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

/// An item that does not have the shape this code writes.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} item: {field}")]
pub struct Malformed {
    pub(crate) what: &'static str,
    pub(crate) field: &'static str,
}

/// An item of `what` that could not be read back.
pub(crate) fn malformed(what: &'static str) -> Malformed {
    Malformed { what, field: "(shape)" }
}

pub(crate) fn need<T>(v: Option<T>, what: &'static str, field: &'static str) -> Result<T, Malformed> {
    v.ok_or(Malformed { what, field })
}

/// An update expression written clause by clause (`SET …, … ADD … REMOVE
/// …`); empty clauses are left out.
#[derive(Debug, Default)]
pub(crate) struct UpdateExpr {
    pub set: Vec<String>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl UpdateExpr {
    pub fn text(&self) -> String {
        [("SET", &self.set), ("ADD", &self.add), ("REMOVE", &self.remove)]
            .iter()
            .filter(|(_, parts)| !parts.is_empty())
            .map(|(clause, parts)| format!("{clause} {}", parts.join(", ")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Expression attribute names or values, as a request sets them at once:
/// `None` when there are none (DynamoDB refuses an empty map).
pub(crate) fn placeholders<V>(pairs: impl IntoIterator<Item = (impl Into<String>, V)>) -> Option<HashMap<String, V>> {
    let map: HashMap<String, V> = pairs.into_iter().map(|(name, value)| (name.into(), value)).collect();
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_expression_has_the_clauses_it_was_given() {
        let expr = UpdateExpr { set: vec!["a = :a".into(), "b = :b".into()], add: vec![], remove: vec!["c".into()] };
        assert_eq!(expr.text(), "SET a = :a, b = :b REMOVE c");
        assert_eq!(UpdateExpr { add: vec!["n :one".into()], ..Default::default() }.text(), "ADD n :one");
        assert!(placeholders(Vec::<(String, AttributeValue)>::new()).is_none());
    }
}
