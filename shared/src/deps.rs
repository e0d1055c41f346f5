//! What every function needs, built once per process (in `main`, outside
//! the handler) from explicit environment variables.

use std::time::Duration;

use crate::clock::Clock;
use crate::domain::catalogue::Catalogue;
use crate::events::Events;
use crate::notify::Notifier;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Typed configuration from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table_name: String,
    /// `EVENT_BUS_NAME`: where domain events go.
    pub event_bus: String,
    /// `SENDER_EMAIL`: the verified SES identity emails come from.
    pub sender_email: String,
    /// `DASHBOARD_URL`: the link in every email.
    pub dashboard_url: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let dashboard_url = required("DASHBOARD_URL")?;
        if !(dashboard_url.starts_with("https://") || dashboard_url.starts_with("http://")) {
            return Err(ConfigError::Invalid("DASHBOARD_URL", "must be an http(s) URL".into()));
        }
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            event_bus: required("EVENT_BUS_NAME")?,
            sender_email: required("SENDER_EMAIL")?,
            dashboard_url,
        })
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
}

#[derive(Clone, Debug)]
pub struct Deps {
    pub store: Store,
    pub clock: Clock,
    pub catalogue: &'static Catalogue,
    pub notifier: Notifier,
    pub events: Events,
}

impl Deps {
    /// Clients from one shared AWS config; endpoints come from the SDK's
    /// standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, …).
    pub async fn from_env(clock: Clock) -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Deps::new(&aws, &config, clock))
    }

    pub fn new(aws: &aws_config::SdkConfig, config: &Config, clock: Clock) -> Self {
        // An email or event must not hold a consume for long: a send that
        // times out is retried by the next job run.
        let quick =
            aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(3)).build();
        let ses = aws_sdk_sesv2::config::Builder::from(aws).timeout_config(quick.clone()).build();
        let eventbridge = aws_sdk_eventbridge::config::Builder::from(aws).timeout_config(quick).build();
        Deps {
            store: Store::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name),
            clock,
            catalogue: Catalogue::builtin(),
            notifier: Notifier::new(aws_sdk_sesv2::Client::from_conf(ses), &config.sender_email, &config.dashboard_url),
            events: Events::new(aws_sdk_eventbridge::Client::from_conf(eventbridge), &config.event_bus),
        }
    }
}

/// JSON logs for CloudWatch; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false).without_time().try_init();
}
