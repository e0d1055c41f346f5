//! Renders every email to `target/email-previews/*.html` (and `.txt`), so a
//! person can open them, and checks what each must say.

use quota_shared::domain::catalogue::ResourceKind;
use quota_shared::domain::org::Locale;
use quota_shared::email::templates::{Email, ThresholdNotice, threshold_email, trial_ended_email};

#[test]
fn every_template_renders_to_a_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../email-previews");
    std::fs::create_dir_all(&dir).unwrap();
    let mut written = Vec::new();
    let mut save = |name: String, email: &Email| {
        assert!(!email.subject.is_empty() && email.html.starts_with("<!DOCTYPE html>") && !email.text.is_empty());
        std::fs::write(dir.join(format!("{name}.html")), &email.html).unwrap();
        std::fs::write(dir.join(format!("{name}.txt")), format!("Subject: {}\n\n{}", email.subject, email.text))
            .unwrap();
        written.push(name);
    };
    for locale in [Locale::En, Locale::Da] {
        let cases = [
            ("free-80", "free", "conversations", ResourceKind::Period, 80, 80, true),
            ("free-100", "free", "conversations", ResourceKind::Period, 100, 100, true),
            ("paid-80", "growth", "conversations", ResourceKind::Period, 80, 245, false),
            ("paid-100", "growth", "conversations", ResourceKind::Period, 100, 300, false),
            ("paid-110", "growth", "conversations", ResourceKind::Period, 110, 333, false),
            ("contacts-80", "basic", "contacts", ResourceKind::Total, 80, 2000, true),
            ("contacts-100", "basic", "contacts", ResourceKind::Total, 100, 2500, true),
        ];
        for (name, plan, resource, kind, threshold, used, blocks) in cases {
            let limit = if resource == "contacts" {
                2500
            } else if plan == "free" {
                100
            } else {
                300
            };
            let notice = ThresholdNotice {
                org_id: "acme <Demo> & Co".into(),
                plan: plan.into(),
                resource: resource.into(),
                kind,
                threshold,
                used,
                limit,
                blocks_at_limit: blocks,
                locale,
                dashboard_url: "https://app.example.com/usage?org=acme&tab=quota".into(),
            };
            let email = threshold_email(&notice);
            assert!(email.html.contains("https://app.example.com/usage?org=acme&amp;tab=quota"), "escaped link");
            save(format!("{}-{name}", locale.as_str()), &email);
        }
        save(
            format!("{}-trial-ended", locale.as_str()),
            &trial_ended_email("acme <Demo>", locale, "https://app.example.com/upgrade"),
        );
    }
    assert_eq!(written.len(), 16);
    println!("email previews written to {}", dir.canonicalize().unwrap().display());
}
