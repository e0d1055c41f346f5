//! A function whose configuration is missing or invalid stops at once with
//! one log line naming the variable and the rule it breaks (what Lambda's
//! log shows for a failed init). Every function's `main` starts the same
//! way (`quota_shared::deps::Setup::from_env_or_exit`); this checks one binary.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, Vec<serde_json::Value>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_get-usage"));
    cmd.env_clear().env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the function runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON log line: {l}")))
        .collect();
    (out.status.success(), lines)
}

#[test]
fn a_missing_or_invalid_setting_is_one_log_line() {
    let valid = [
        ("TABLE_NAME", "quota"),
        ("EVENT_BUS_NAME", "quota-bus"),
        ("SENDER_EMAIL", "quota@example.com"),
        ("DASHBOARD_URL", "https://app.example.com"),
    ];
    let (ok, lines) = start(&valid[1..]);
    assert!(!ok);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(lines[0]["fields"]["error"], "environment variable TABLE_NAME is required");

    let mut bad = valid;
    bad[3] = ("DASHBOARD_URL", "app.example.com");
    let (ok, lines) = start(&bad);
    assert!(!ok);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["fields"]["error"],
        r#"DASHBOARD_URL="app.example.com" is invalid: must be an http:// or https:// URL"#
    );
}
