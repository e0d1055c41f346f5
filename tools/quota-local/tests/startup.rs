//! `quota-local` refuses to start with one line on stderr that names what is
//! wrong: the setting and its rule, or the endpoint it could not reach. No
//! backtrace, no SDK dump, even with `RUST_BACKTRACE=1`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn quota_local(env: &[(&str, &str)]) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quota-local"));
    cmd.env("RUST_BACKTRACE", "1")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("quota-local runs");
    (out, started.elapsed())
}

fn one_line(out: &Output) -> String {
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("DispatchFailure"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn a_bad_setting_is_named_with_its_rule() {
    let (out, _) = quota_local(&[("TABLE_NAME", "tp")]);
    assert_eq!(
        one_line(&out),
        r#"error: TABLE_NAME="tp" is invalid: a DynamoDB table name is 3-255 of a-z A-Z 0-9 _ - ."#
    );
    let (out, _) = quota_local(&[("SENDER_EMAIL", "quota")]);
    assert!(one_line(&out).starts_with(r#"error: SENDER_EMAIL="quota" is invalid"#));
    let (out, _) = quota_local(&[("QUOTA_NOW", "yesterday")]);
    assert!(one_line(&out).starts_with(r#"error: QUOTA_NOW="yesterday" is invalid: an RFC 3339 instant"#));
    let (out, _) = quota_local(&[("PORT", "http")]);
    assert!(one_line(&out).starts_with(r#"error: PORT="http" is invalid"#));
}

#[test]
fn an_unreachable_endpoint_is_named() {
    // Nothing listens on port 1 of loopback.
    let (out, took) = quota_local(&[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")]);
    let line = one_line(&out);
    assert!(
        line.starts_with("error: cannot reach DynamoDB at http://127.0.0.1:1 (AWS_ENDPOINT_URL_DYNAMODB): "),
        "{line}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}
