//! The message a Slack or Discord channel gets for an event, in the org's
//! language: what happened, to which resource, the numbers, and the link to
//! the usage page. Built from the event's `detail` as published
//! (`docs/events.md`), so it says what a webhook would be told.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::domain::catalogue::Catalogue;
use crate::domain::events::EventKind;
use crate::domain::locale::Locale;
use crate::email::templates::number;

/// How the chat writes a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chat {
    /// `<url|text>`, with `&`, `<` and `>` escaped in text (Slack's mrkdwn).
    Slack,
    /// `[text](url)` (Discord's markdown).
    Discord,
}

/// What the org's people read in a chat.
pub struct Audience<'a> {
    pub locale: Locale,
    pub timezone: Tz,
    pub dashboard_url: &'a str,
}

/// The message for `kind` with `detail`; `None` for an event channels do
/// not take.
pub fn message(chat: Chat, kind: EventKind, detail: &Value, to: &Audience) -> Option<String> {
    let da = to.locale == Locale::Da;
    let org = detail["orgId"].as_str().unwrap_or_default();
    let resource = detail["resource"].as_str().unwrap_or_default();
    let catalogue = Catalogue::builtin();
    let name = catalogue.resource(resource).map_or(resource, |r| r.names.get(to.locale));
    let n = |field: &str| detail[field].as_i64().map(|v| amount(resource, v, to.locale));
    let used = n("used").unwrap_or_default();
    let limit = n("limit");
    let of = |used: &str, limit: &Option<String>| match (limit, da) {
        (Some(l), false) => format!("{used} of {l} used"),
        (Some(l), true) => format!("{used} af {l} brugt"),
        (None, false) => format!("{used} used (unlimited)"),
        (None, true) => format!("{used} brugt (ubegrænset)"),
    };
    let day = |field: &str| detail[field].as_str().and_then(|t| date(t, to.timezone, Duration::zero(), da));
    let org = format!("`{org}`");
    let name_cap = capitalised(name);
    let text = match kind {
        EventKind::QuotaThresholdCrossed => {
            let t = detail["threshold"].as_u64().unwrap_or_default();
            if da {
                format!("⚠️ {org}: {name_cap} har nået {t}% ({}).", of(&used, &limit))
            } else {
                format!("⚠️ {org}: {name_cap} reached {t}% ({}).", of(&used, &limit))
            }
        }
        EventKind::QuotaExceeded => {
            let blocked = detail["blocked"].as_bool().unwrap_or(false);
            match (da, blocked) {
                (false, true) => {
                    format!("🛑 {org}: the limit for {name} is reached ({}). New use is blocked.", of(&used, &limit))
                }
                (false, false) => format!(
                    "🛑 {org}: the limit for {name} is reached ({}). Use continues; overage is billed.",
                    of(&used, &limit)
                ),
                (true, true) => {
                    format!("🛑 {org}: grænsen for {name} er nået ({}). Nyt forbrug er blokeret.", of(&used, &limit))
                }
                (true, false) => format!(
                    "🛑 {org}: grænsen for {name} er nået ({}). Forbruget fortsætter; overforbrug faktureres.",
                    of(&used, &limit)
                ),
            }
        }
        EventKind::QuotaRecovered => {
            let t = detail["threshold"].as_u64().unwrap_or_default();
            let cause = detail["cause"].as_str().unwrap_or_default();
            let why = match (cause, da) {
                ("reset", false) => " after a reset",
                ("grant", false) => " with units granted",
                ("plan_change", false) => " after a plan change",
                ("new_period", false) => " in the new period",
                ("reset", true) => " efter en nulstilling",
                ("grant", true) => " med tildelte enheder",
                ("plan_change", true) => " efter et planskifte",
                ("new_period", true) => " i den nye periode",
                _ => "",
            };
            // Below the threshold, yet still refused (a free trial that has ended): said so.
            let blocked = detail["blocked"].as_bool().unwrap_or(false);
            match (da, blocked) {
                (false, false) => format!("✅ {org}: {name_cap} is below {t}% again{why} ({}).", of(&used, &limit)),
                (true, false) => format!("✅ {org}: {name_cap} er under {t}% igen{why} ({}).", of(&used, &limit)),
                (false, true) => format!(
                    "ℹ️ {org}: {name_cap} is below {t}% again{why} ({}), but new use is still blocked.",
                    of(&used, &limit)
                ),
                (true, true) => format!(
                    "ℹ️ {org}: {name_cap} er under {t}% igen{why} ({}), men nyt forbrug er stadig blokeret.",
                    of(&used, &limit)
                ),
            }
        }
        EventKind::TrialExpired => {
            if da {
                format!("⏰ {org}: den gratis prøveperiode er slut, og nyt forbrug er blokeret.")
            } else {
                format!("⏰ {org}: the free trial has ended, and new use is blocked.")
            }
        }
        EventKind::GrantAdded | EventKind::GrantRevoked | EventKind::GrantExpired => {
            let units = n("amount").unwrap_or_default();
            let until = day("expiresAt").unwrap_or_default();
            match (kind, da) {
                (EventKind::GrantAdded, false) => format!("➕ {org}: {units} more {name} until {until}."),
                (EventKind::GrantAdded, true) => format!("➕ {org}: {units} ekstra {name} indtil {until}."),
                (EventKind::GrantRevoked, false) => format!("➖ {org}: {units} granted {name} were withdrawn."),
                (EventKind::GrantRevoked, true) => format!("➖ {org}: {units} tildelte {name} er trukket tilbage."),
                (_, false) => format!("⌛ {org}: {units} granted {name} expired on {until}."),
                (_, true) => format!("⌛ {org}: {units} tildelte {name} udløb {until}."),
            }
        }
        EventKind::UsagePeriodClosed => {
            let period = &detail["period"];
            let from = period["start"].as_str().and_then(|t| date(t, to.timezone, Duration::zero(), da));
            // The period's end is the next one's first instant: its last day is the one before.
            let last = period["end"].as_str().and_then(|t| date(t, to.timezone, Duration::seconds(-1), da));
            let lines: Vec<String> = detail["resources"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let res = r["resource"].as_str().unwrap_or_default();
                    let res_name = catalogue.resource(res).map_or(res, |d| d.names.get(to.locale));
                    let v = |f: &str| r[f].as_i64().map(|v| amount(res, v, to.locale));
                    let over = r["overage"].as_i64().filter(|o| *o > 0).map(|o| amount(res, o, to.locale));
                    let over = match (over, da) {
                        (Some(o), false) => format!(", {o} over"),
                        (Some(o), true) => format!(", {o} over grænsen"),
                        (None, _) => String::new(),
                    };
                    format!("• {}: {}{over}", capitalised(res_name), of(&v("used").unwrap_or_default(), &v("limit")))
                })
                .collect();
            let (from, last) = (from.unwrap_or_default(), last.unwrap_or_default());
            let head = if da {
                format!("📊 {org}: faktureringsperioden {from} – {last} er afsluttet.")
            } else {
                format!("📊 {org}: the billing period {from} – {last} has closed.")
            };
            std::iter::once(head).chain(lines).collect::<Vec<_>>().join("\n")
        }
        _ => return None,
    };
    let label = if da { "Se forbrug" } else { "View usage" };
    Some(match chat {
        Chat::Slack => format!("{}\n<{}|{label}>", slack_escape(&text), slack_escape(to.dashboard_url)),
        Chat::Discord => format!("{text}\n[{label}]({})", to.dashboard_url),
    })
}

/// The request body for the chat.
pub fn body(chat: Chat, text: &str) -> String {
    match chat {
        Chat::Slack => serde_json::json!({ "text": text }).to_string(),
        // No mention in a message pings anyone.
        Chat::Discord => serde_json::json!({ "content": text, "allowed_mentions": { "parse": [] } }).to_string(),
    }
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// A count as people read it; bytes for storage.
fn amount(resource: &str, value: i64, locale: Locale) -> String {
    if resource != "storage" {
        return number(value, locale);
    }
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = value as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let text = if unit == 0 { format!("{value}") } else { format!("{v:.2}") };
    let text = if locale == Locale::Da { text.replace('.', ",") } else { text };
    format!("{text} {}", UNITS[unit])
}

/// The day of RFC 3339 `at` (moved by `shift`) in `tz`: "1 Apr 2026" / "1. apr. 2026".
fn date(at: &str, tz: Tz, shift: Duration, da: bool) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc) + shift;
    let local = t.with_timezone(&tz);
    const EN: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const DA: [&str; 12] =
        ["jan.", "feb.", "mar.", "apr.", "maj", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "dec."];
    use chrono::Datelike;
    let m = local.month0() as usize;
    Some(if da {
        format!("{}. {} {}", local.day(), DA[m], local.year())
    } else {
        format!("{} {} {}", local.day(), EN[m], local.year())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to(locale: Locale) -> Audience<'static> {
        Audience { locale, timezone: chrono_tz::Europe::Copenhagen, dashboard_url: "https://app.example.com/usage" }
    }

    #[test]
    fn a_threshold_in_english_and_danish_with_the_numbers_and_the_link() {
        let detail = json!({
            "orgId": "acme", "resource": "conversations", "threshold": 80, "used": 1200, "limit": 1500,
            "percentage": 80.0, "enforcement": "soft", "plan": "basic", "period": null, "at": "2026-03-18T09:12:44Z"
        });
        let en = message(Chat::Slack, EventKind::QuotaThresholdCrossed, &detail, &to(Locale::En)).unwrap();
        assert_eq!(
            en,
            "⚠️ `acme`: Conversations reached 80% (1,200 of 1,500 used).\n<https://app.example.com/usage|View usage>"
        );
        let da = message(Chat::Discord, EventKind::QuotaThresholdCrossed, &detail, &to(Locale::Da)).unwrap();
        assert_eq!(
            da,
            "⚠️ `acme`: Samtaler har nået 80% (1.200 af 1.500 brugt).\n[Se forbrug](https://app.example.com/usage)"
        );
    }

    #[test]
    fn recovery_says_why_and_a_closed_period_its_days_in_the_orgs_zone() {
        let recovered = json!({
            "eventId": "evt_1", "orgId": "acme", "resource": "storage", "threshold": 100, "used": 1073741824,
            "limit": 2147483648u64, "percentage": 50.0, "blocked": false, "cause": "grant", "plan": "free",
            "period": null, "at": "2026-03-18T09:12:44Z"
        });
        let text = message(Chat::Discord, EventKind::QuotaRecovered, &recovered, &to(Locale::En)).unwrap();
        assert!(
            text.starts_with("✅ `acme`: Storage is below 100% again with units granted (1.00 GB of 2.00 GB used)."),
            "{text}"
        );
        let still = json!({ "blocked": true, "cause": "reset", "threshold": 100, "used": 0, "limit": 100, "orgId": "acme", "resource": "conversations" });
        let text = message(Chat::Discord, EventKind::QuotaRecovered, &still, &to(Locale::En)).unwrap();
        assert!(text.starts_with("ℹ️ `acme`: Conversations is below 100% again after a reset (0 of 100 used), but new use is still blocked."), "{text}");
        let closed = json!({
            "orgId": "acme", "plan": "basic", "periodId": "acme/2026-02-28T23:00:00Z",
            "period": { "start": "2026-02-28T23:00:00Z", "end": "2026-03-31T22:00:00Z" },
            "resources": [{ "resource": "conversations", "used": 130, "limit": 100, "overage": 30, "enforcement": "soft", "plan": "basic" }],
            "at": "2026-04-01T00:15:02Z"
        });
        let text = message(Chat::Slack, EventKind::UsagePeriodClosed, &closed, &to(Locale::Da)).unwrap();
        assert_eq!(
            text,
            "📊 `acme`: faktureringsperioden 1. mar. 2026 – 31. mar. 2026 er afsluttet.\n• Samtaler: 130 af 100 brugt, 30 over grænsen\n<https://app.example.com/usage|Se forbrug>"
        );
    }

    #[test]
    fn slack_links_are_escaped_too() {
        let to = Audience { dashboard_url: "https://app.example.com/usage?org=a&tab=b", ..to(Locale::En) };
        let detail = json!({ "orgId": "a", "plan": "free", "trialEndedAt": "2026-03-31T08:00:00Z", "at": "2026-04-01T00:15:03Z" });
        let text = message(Chat::Slack, EventKind::TrialExpired, &detail, &to).unwrap();
        assert!(text.ends_with("<https://app.example.com/usage?org=a&amp;tab=b|View usage>"), "{text}");
    }

    #[test]
    fn slack_text_is_escaped_and_discord_pings_nobody() {
        let detail = json!({ "orgId": "a<b>&c", "plan": "free", "trialEndedAt": "2026-03-31T08:00:00Z", "at": "2026-04-01T00:15:03Z" });
        let text = message(Chat::Slack, EventKind::TrialExpired, &detail, &to(Locale::En)).unwrap();
        assert!(text.starts_with("⏰ `a&lt;b&gt;&amp;c`: the free trial has ended"), "{text}");
        let body: Value = serde_json::from_str(&super::body(Chat::Discord, "@everyone")).unwrap();
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        assert_eq!(message(Chat::Slack, EventKind::QuotaReset, &detail, &to(Locale::En)), None);
    }
}
