//! Email texts: threshold notices and the trial-ended notice, in English and
//! Danish, as subject + HTML + plain text. Everything that comes from data
//! is escaped in the HTML.

use crate::domain::catalogue::{Catalogue, ResourceKind};
use crate::domain::org::Locale;

/// What a threshold email is about.
#[derive(Debug, Clone)]
pub struct ThresholdNotice {
    pub org_id: String,
    pub plan: String,
    pub resource: String,
    pub kind: ResourceKind,
    pub threshold: u32,
    pub used: i64,
    pub limit: i64,
    /// Free plans are blocked at 100 %; paid plans continue and pay overage.
    pub blocks_at_limit: bool,
    pub locale: Locale,
    pub dashboard_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub subject: String,
    pub html: String,
    pub text: String,
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 12345 → "12,345" (en) or "12.345" (da).
pub fn number(n: i64, locale: Locale) -> String {
    let sep = match locale {
        Locale::En => ',',
        Locale::Da => '.',
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(d);
    }
    if n < 0 { format!("-{out}") } else { out }
}

const YELLOW: &str = "#f59e0b";
const RED: &str = "#dc2626";

pub fn threshold_email(n: &ThresholdNotice) -> Email {
    let names = Catalogue::builtin().resource(&n.resource).map(|r| &r.names);
    let name = names.map_or(n.resource.as_str(), |names| names.get(n.locale));
    let plan = Catalogue::builtin().plan(&n.plan).map_or(n.plan.as_str(), |p| p.names.get(n.locale));
    let pct = if n.limit > 0 { (n.used as f64 * 100.0 / n.limit as f64).round() as i64 } else { 100 };
    let over = (n.used - n.limit).max(0);
    let monthly = n.kind == ResourceKind::Period;
    let (used, limit, overage) = (number(n.used, n.locale), number(n.limit, n.locale), number(over, n.locale));
    let t = n.threshold;
    let (subject, headline, body, action) = match (n.locale, t, n.blocks_at_limit) {
        (Locale::En, 80, _) => (
            if monthly {
                format!("You have used 80% of your monthly {name}")
            } else {
                format!("You have used 80% of your {name} limit")
            },
            "You are approaching your limit".to_string(),
            format!("Your organization has used {used} of {limit} {name} on the {plan} plan."),
            "Upgrade your plan to avoid interruptions.".to_string(),
        ),
        (Locale::Da, 80, _) => (
            if monthly {
                format!("Du har brugt 80% af dine månedlige {name}")
            } else {
                format!("Du har brugt 80% af din grænse for {name}")
            },
            "I nærmer jer jeres grænse".to_string(),
            format!("Jeres organisation har brugt {used} af {limit} {name} på {plan}-planen."),
            "Opgrader jeres plan for at undgå afbrydelser.".to_string(),
        ),
        (Locale::En, 100, true) => (
            if monthly {
                format!("Monthly quota reached: {name} are paused")
            } else {
                format!("Limit reached for {name}")
            },
            "You have reached your limit".to_string(),
            format!("Your organization has used all {limit} {name} on the {plan} plan. New {name} are blocked."),
            "Upgrade to continue.".to_string(),
        ),
        (Locale::Da, 100, true) => (
            if monthly { "Månedlig kvote nået".to_string() } else { format!("Grænsen for {name} er nået") },
            "I har nået jeres grænse".to_string(),
            format!("Jeres organisation har brugt alle {limit} {name} på {plan}-planen. Nye {name} er blokeret."),
            "Opgrader for at fortsætte.".to_string(),
        ),
        (Locale::En, 100, false) => (
            format!("You have used 100% of your monthly {name}"),
            "You have reached your included usage".to_string(),
            format!("Your organization has used {used} of {limit} {name} on the {plan} plan. Service continues."),
            "Overage will be billed.".to_string(),
        ),
        (Locale::Da, 100, false) => (
            format!("Du har brugt 100% af dine månedlige {name}"),
            "I har brugt jeres inkluderede forbrug".to_string(),
            format!("Jeres organisation har brugt {used} af {limit} {name} på {plan}-planen. Tjenesten fortsætter."),
            "Overskydende forbrug vil blive faktureret.".to_string(),
        ),
        (Locale::En, _, _) => (
            format!("You have used {t}% of your monthly {name}"),
            format!("{overage} {name} over your plan"),
            format!("Your organization has used {used} of {limit} {name} on the {plan} plan. Service continues."),
            "Overage will be billed. Upgrade to include more.".to_string(),
        ),
        (Locale::Da, _, _) => (
            format!("Du har brugt {t}% af dine månedlige {name}"),
            format!("{overage} {name} over jeres plan"),
            format!("Jeres organisation har brugt {used} af {limit} {name} på {plan}-planen. Tjenesten fortsætter."),
            "Overskydende forbrug vil blive faktureret. Opgrader for at få flere inkluderet.".to_string(),
        ),
    };
    let color = if t >= 100 { RED } else { YELLOW };
    let button = match n.locale {
        Locale::En => "View usage",
        Locale::Da => "Se forbrug",
    };
    let html = layout(&subject, &headline, &body, &action, Some((pct, color)), &n.dashboard_url, button, n.locale);
    let text = format!(
        "{subject}\n\n{headline}\n{body}\n{used} / {limit} ({pct}%)\n{action}\n\n{button}: {}\n",
        n.dashboard_url
    );
    Email { subject, html, text }
}

pub fn trial_ended_email(org_id: &str, locale: Locale, dashboard_url: &str) -> Email {
    let (subject, headline, body, action, button) = match locale {
        Locale::En => (
            "Your free trial has ended",
            "Free trial expired",
            format!("The free trial of {org_id} has ended, and new usage is blocked."),
            "Upgrade to continue.",
            "Choose a plan",
        ),
        Locale::Da => (
            "Jeres gratis prøveperiode er slut",
            "Gratis prøveperiode udløbet",
            format!("Den gratis prøveperiode for {org_id} er slut, og nyt forbrug er blokeret."),
            "Opgrader for at fortsætte.",
            "Vælg en plan",
        ),
    };
    let html = layout(subject, headline, &body, action, None, dashboard_url, button, locale);
    let text = format!("{subject}\n\n{headline}\n{body}\n{action}\n\n{button}: {dashboard_url}\n");
    Email { subject: subject.to_string(), html, text }
}

#[allow(clippy::too_many_arguments)]
fn layout(
    subject: &str,
    headline: &str,
    body: &str,
    action: &str,
    bar: Option<(i64, &str)>,
    url: &str,
    button: &str,
    locale: Locale,
) -> String {
    let bar = match bar {
        Some((pct, color)) => format!(
            r#"<div style="background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden;margin:16px 0 4px">
  <div style="background:{color};width:{width}%;height:14px"></div></div>
<p style="margin:0 0 16px;color:{color};font-weight:bold">{pct}%</p>"#,
            width = pct.clamp(0, 100),
        ),
        None => String::new(),
    };
    let accent = if bar.is_empty() { RED } else { "#111827" };
    format!(
        r#"<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{subject}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;background:#f3f4f6;margin:0;padding:24px">
<div style="max-width:560px;margin:0 auto;background:#ffffff;border-radius:8px;padding:24px">
<h1 style="font-size:20px;color:{accent};margin:0 0 12px">{headline}</h1>
<p style="color:#374151">{body}</p>
{bar}<p style="color:#374151">{action}</p>
<p><a href="{url}" style="display:inline-block;background:#2563eb;color:#ffffff;padding:10px 18px;border-radius:6px;text-decoration:none">{button}</a></p>
</div></body></html>
"#,
        lang = locale.as_str(),
        subject = escape(subject),
        headline = escape(headline),
        body = escape(body),
        action = escape(action),
        url = escape(url),
        button = escape(button),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(threshold: u32, used: i64, blocks: bool, locale: Locale) -> ThresholdNotice {
        ThresholdNotice {
            org_id: "acme".into(),
            plan: if blocks { "free".into() } else { "basic".into() },
            resource: "conversations".into(),
            kind: ResourceKind::Period,
            threshold,
            used,
            limit: 100,
            blocks_at_limit: blocks,
            locale,
            dashboard_url: "https://app.example.com/usage?org=acme&x=<y>".into(),
        }
    }

    #[test]
    fn danish_80_percent_uses_the_seed_text() {
        let e = threshold_email(&notice(80, 80, true, Locale::Da));
        assert_eq!(e.subject, "Du har brugt 80% af dine månedlige samtaler");
        assert!(e.html.contains("#f59e0b"), "yellow at 80 %");
        assert!(e.text.contains("80 / 100 (80%)"));
    }

    #[test]
    fn free_and_paid_differ_at_100() {
        let free = threshold_email(&notice(100, 100, true, Locale::Da));
        assert!(free.html.contains("Opgrader for at fortsætte."));
        assert!(free.html.contains("#dc2626"), "red at 100 %");
        let paid = threshold_email(&notice(100, 100, false, Locale::Da));
        assert!(paid.html.contains("Overskydende forbrug vil blive faktureret."));
        let over = threshold_email(&notice(110, 112, false, Locale::En));
        assert_eq!(over.subject, "You have used 110% of your monthly conversations");
        assert!(over.text.contains("12 conversations over your plan"));
    }

    #[test]
    fn data_is_escaped() {
        let e = threshold_email(&notice(80, 80, true, Locale::En));
        assert!(e.html.contains("org=acme&amp;x=&lt;y&gt;"));
        assert!(!e.html.contains("<y>"));
        let t = trial_ended_email("a<b>", Locale::En, "https://x");
        assert!(t.html.contains("a&lt;b&gt;"));
    }

    #[test]
    fn numbers_are_grouped_by_locale() {
        assert_eq!(number(1234567, Locale::En), "1,234,567");
        assert_eq!(number(1234567, Locale::Da), "1.234.567");
        assert_eq!(number(999, Locale::Da), "999");
    }
}
