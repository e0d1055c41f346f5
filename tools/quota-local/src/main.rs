//! `quota-local`: the local API server, and a token minter.
//!
//! ```text
//! quota-local                       serve on 127.0.0.1:$PORT (default 3000)
//! quota-local token [--sub S] [--scope "quota:read quota:write"] [--org ORG] [--hours H]
//! ```
//!
//! Environment: `PORT`, `TABLE_NAME` (default `quota-local`), `SENDER_EMAIL`
//! (default `quota@example.com`), `EVENT_BUS_NAME` (default `quota-local`),
//! `DASHBOARD_URL` (default `http://127.0.0.1:3000/v1/health`),
//! `LOCAL_JWT_SECRET` (default `local-dev-secret`), `QUOTA_NOW` (RFC 3339;
//! pins the clock), `EMAIL_OUTBOX_DIR` (also write each sent email there as
//! `.html`), `QUOTA_ALLOW_PRIVATE_WEBHOOKS=1` (channels may point at
//! loopback, `http://127.0.0.1:…`, for a receiver on this machine),
//! `QUOTA_WEBHOOKS_LOOPBACK_ONLY=1` (deliveries reach loopback only, and no
//! name but `localhost` resolves: for test harnesses), and the SDK's
//! `AWS_ENDPOINT_URL_*` variables.
//!
//! Channel deliveries run in-process (`quota_shared::outbound::local`):
//! what the bus accepts is fanned out to the channels that take it, and each
//! delivery is attempted, and retried on the deployed schedule.

use std::process::ExitCode;

use anyhow::{Context, bail};
use quota_shared::deps::Config;
use quota_shared::{Clock, Deps};

const DEFAULT_SECRET: &str = "local-dev-secret";

/// A start-up failure: one line on stderr, naming what is wrong; no
/// backtrace, no SDK dump.
fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    // `{:#}`: the error and its causes on one line.
    eprintln!("error: {err:#}");
    ExitCode::FAILURE
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secret = std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| DEFAULT_SECRET.to_string());
    match args.first().map(String::as_str) {
        Some("token") => {
            println!("{}", token(&secret, &args[1..])?);
            Ok(())
        }
        None | Some("serve") => serve(secret).await,
        Some(other) => bail!("unknown command {other:?}; use `quota-local` or `quota-local token`"),
    }
}

fn token(secret: &str, args: &[String]) -> anyhow::Result<String> {
    let (mut sub, mut scope, mut org, mut hours) = ("local-admin".to_string(), "quota:admin".to_string(), None, 12i64);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sub" => sub = value.clone(),
            "--scope" => scope = value.clone(),
            "--org" => org = Some(value.clone()),
            "--hours" => hours = value.parse().context("--hours takes a whole number")?,
            _ => bail!("unknown flag {flag}; flags: --sub, --scope, --org, --hours"),
        }
    }
    let mut claims = serde_json::json!({
        "sub": sub,
        "scope": scope,
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + hours * 3600,
    });
    if let Some(org) = org {
        claims["org_id"] = org.into();
    }
    Ok(quota_local::jwt::mint(secret, &claims))
}

/// The local defaults, laid over the environment.
fn config(port: u16) -> Result<Config, quota_shared::deps::ConfigError> {
    let default = |name: &str| match name {
        "TABLE_NAME" => Some("quota-local".to_string()),
        "SENDER_EMAIL" => Some("quota@example.com".to_string()),
        "EVENT_BUS_NAME" => Some("quota-local".to_string()),
        "DASHBOARD_URL" => Some(format!("http://127.0.0.1:{port}/v1/health")),
        _ => None,
    };
    Config::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| default(name)))
}

/// JSON logs; `RUST_LOG` takes per-module directives here
/// (`RUST_LOG=quota_shared=debug`), unlike the functions' level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false).without_time().try_init();
}

async fn serve(secret: String) -> anyhow::Result<()> {
    init_tracing();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().with_context(|| format!("PORT={p:?} is invalid: a port number, 1-65535"))?,
        Err(_) => 3000,
    };
    let clock = match std::env::var("QUOTA_NOW") {
        Ok(at) => {
            Clock::fixed(at.parse().with_context(|| format!("QUOTA_NOW={at:?} is invalid: an RFC 3339 instant"))?)
        }
        Err(_) => Clock::system(),
    };
    let config = config(port)?;
    let aws = quota_shared::clients::local_config().await;
    let mut deps = Deps::new(&aws, &config, clock);
    if let Ok(dir) = std::env::var("EMAIL_OUTBOX_DIR") {
        deps.notifier = deps.notifier.with_outbox(dir.into());
    }
    match std::env::var("QUOTA_ALLOW_PRIVATE_WEBHOOKS").as_deref() {
        Ok("1") => deps.net = quota_shared::outbound::Net::local(),
        Ok("0" | "") | Err(_) => {}
        Ok(other) => bail!("QUOTA_ALLOW_PRIVATE_WEBHOOKS={other:?} is invalid: 1 or unset"),
    }
    match std::env::var("QUOTA_WEBHOOKS_LOOPBACK_ONLY").as_deref() {
        Ok("1") => deps.net = quota_shared::outbound::Net::loopback_only(),
        Ok("0" | "") | Err(_) => {}
        Ok(other) => bail!("QUOTA_WEBHOOKS_LOOPBACK_ONLY={other:?} is invalid: 1 or unset"),
    }
    let sender = quota_shared::outbound::Sender::new(deps.net.clone());
    let backoff = quota_shared::outbound::local::Backoff::DEPLOYED;
    let channels =
        quota_shared::outbound::local::start(deps.store.clone(), sender, config.dashboard_url.clone(), backoff);
    deps.events = deps.events.clone().tapped(move |event| channels.event(event));
    quota_local::ensure_local_resources(&deps).await?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} (PORT)"))?;
    print_banner(port, &secret, &config.table_name)?;
    let local = quota_local::Local { deps, jwt_secret: secret };
    quota_local::serve(listener, local, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn print_banner(port: u16, secret: &str, table: &str) -> anyhow::Result<()> {
    let admin = token(secret, &[])?;
    let base = format!("http://127.0.0.1:{port}");
    println!(
        r#"
quota-local listening on {base} (table {table})

Mint a token (HS256, LOCAL_JWT_SECRET):
  cargo run -q -p quota-local -- token --sub alice --scope "quota:read quota:write" --org acme

Try it (the admin token below is valid for 12 hours):
  TOKEN={admin}
  curl -s {base}/v1/health
  curl -s -X PUT {base}/v1/orgs/acme -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"plan":"free","contacts":{{"owner":"owner@acme.test"}}}}'
  curl -s -X POST {base}/v1/orgs/acme/usage/conversations/consume -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"amount":1}}'
  curl -s {base}/v1/orgs/acme/usage -H "Authorization: Bearer $TOKEN"

The operator console, signed in as that admin:
  {base}/console/#access_token={admin}

Ctrl-C stops everything.
"#
    );
    Ok(())
}
