//! What every function needs, built once per process (in `main`, outside
//! the handler) from explicit environment variables.

use crate::clock::Clock;
use crate::domain::catalogue::Catalogue;
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
    pub table_name: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            table_name: required("TABLE_NAME")?,
        })
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

#[derive(Clone, Debug)]
pub struct Deps {
    pub store: Store,
    pub clock: Clock,
    pub catalogue: &'static Catalogue,
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
        Deps {
            store: Store::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name),
            clock,
            catalogue: Catalogue::builtin(),
        }
    }
}

/// JSON logs for CloudWatch; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .try_init();
}
