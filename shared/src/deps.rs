//! What every function needs, built once per process (in `main`, outside
//! the handler): typed configuration, checked before anything starts, and
//! the clients built from it.

use crate::bus::EventBus;
use crate::clock::Clock;
use crate::domain::catalogue::Catalogue;
use crate::email::Notifier;
use crate::store::Store;

/// A setting that is missing or breaks its rule; one line, naming both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("{name}={value:?} is invalid: {rule}")]
    Invalid { name: &'static str, value: String, rule: &'static str },
}

/// Typed configuration. Every field has passed its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any source of named values (the environment, or defaults laid
    /// over it, as `quota-local` does), without touching the environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| get(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        Config::new(
            required("TABLE_NAME")?,
            required("EVENT_BUS_NAME")?,
            required("SENDER_EMAIL")?,
            required("DASHBOARD_URL")?,
        )
    }

    /// Checks each value against the rule AWS (or the emails) will hold it to.
    pub fn new(
        table_name: String,
        event_bus: String,
        sender_email: String,
        dashboard_url: String,
    ) -> Result<Self, ConfigError> {
        check("TABLE_NAME", &table_name, table_name_ok, "a DynamoDB table name is 3-255 of a-z A-Z 0-9 _ - .")?;
        check("EVENT_BUS_NAME", &event_bus, bus_name_ok, "an event bus name is 1-256 of a-z A-Z 0-9 _ - . /")?;
        check("SENDER_EMAIL", &sender_email, email_ok, "must be an email address such as quota@example.com")?;
        check("DASHBOARD_URL", &dashboard_url, url_ok, "must be an http:// or https:// URL")?;
        Ok(Config { table_name, event_bus, sender_email, dashboard_url })
    }
}

fn check(name: &'static str, value: &str, ok: fn(&str) -> bool, rule: &'static str) -> Result<(), ConfigError> {
    if ok(value) { Ok(()) } else { Err(ConfigError::Invalid { name, value: value.to_string(), rule }) }
}

fn table_name_ok(v: &str) -> bool {
    (3..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn bus_name_ok(v: &str) -> bool {
    (1..=256).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
}

/// An address alone (no display name), as SES takes it: visible ASCII
/// without `<`, `>` and a second `@`; a domain of two or more non-empty
/// labels. `template.yaml`'s `SenderEmail` pattern says the same (a test
/// holds the two together).
pub fn email_ok(v: &str) -> bool {
    let part = |c: char| c.is_ascii_graphic() && !"<>@".contains(c);
    v.split_once('@').is_some_and(|(local, domain)| {
        let labels: Vec<&str> = domain.split('.').collect();
        !local.is_empty()
            && local.chars().all(part)
            && labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty() && l.chars().all(part))
    })
}

/// An http(s) URL: a host part, and no space or control character
/// (`template.yaml`'s `DashboardUrl` pattern).
pub fn url_ok(v: &str) -> bool {
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    let visible = |c: char| u32::from(c) > 0x20 && c != '\u{7f}';
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && r.chars().all(visible))
}

#[derive(Clone, Debug)]
pub struct Deps {
    pub store: Store,
    pub clock: Clock,
    pub catalogue: &'static Catalogue,
    pub notifier: Notifier,
    pub events: EventBus,
    /// Where customers' channels may point (`crate::outbound`).
    pub net: crate::outbound::Net,
}

impl Deps {
    /// The store alone: no email client and no EventBridge client, so a
    /// function that neither sends nor publishes links neither.
    pub fn with_store(setup: &Setup, clock: Clock) -> Self {
        let (aws, config) = (&setup.aws, &setup.config);
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(crate::clients::dynamodb(aws).build());
        Deps {
            store: Store::new(dynamodb, &config.table_name),
            clock,
            catalogue: Catalogue::builtin(),
            notifier: Notifier::absent(&config.sender_email, &config.dashboard_url),
            events: EventBus::absent(&config.event_bus),
            net: crate::outbound::Net::public(),
        }
    }

    /// Adds the SES client.
    pub fn with_email(mut self, setup: &Setup) -> Self {
        let ses = aws_sdk_sesv2::Client::from_conf(crate::clients::sesv2(&setup.aws).build());
        self.notifier = Notifier::new(ses, &setup.config.sender_email, &setup.config.dashboard_url);
        self
    }

    /// Adds the EventBridge client.
    pub fn with_events(mut self, setup: &Setup) -> Self {
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(crate::clients::eventbridge(&setup.aws).build());
        self.events = EventBus::new(eventbridge, &setup.config.event_bus);
        self
    }

    /// Every client (the local server, the tests and the benchmark).
    pub fn new(aws: &aws_config::SdkConfig, config: &Config, clock: Clock) -> Self {
        let setup = Setup { aws: aws.clone(), config: config.clone() };
        Deps::with_store(&setup, clock).with_email(&setup).with_events(&setup)
    }
}

/// What a function's `main` starts from: the checked configuration and one
/// AWS configuration.
pub struct Setup {
    pub aws: aws_config::SdkConfig,
    pub config: Config,
}

impl Setup {
    /// From the environment, or one log line saying which setting is wrong
    /// and an exit (Lambda reports the failed init).
    pub async fn from_env_or_exit() -> Setup {
        let config = match Config::from_env() {
            Ok(config) => config,
            Err(err) => {
                tracing::error!(error = %err, "cannot start");
                std::process::exit(1);
            }
        };
        Setup { aws: crate::clients::lambda_config(), config }
    }

    /// The store alone, on the system clock; add what the function uses
    /// with [`Deps::with_email`] and [`Deps::with_events`].
    pub fn store(&self) -> Deps {
        Deps::with_store(self, Clock::system())
    }
}

/// JSON logs for CloudWatch at the level `RUST_LOG` names (`error`, `warn`,
/// `info`, `debug`, `trace`; default `info`).
pub fn init_tracing() {
    let level = std::env::var("RUST_LOG").ok().and_then(|v| v.trim().parse().ok());
    let level = level.unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt().json().with_max_level(level).with_current_span(false).without_time().try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: &str, bus: &str, sender: &str, url: &str) -> Result<Config, ConfigError> {
        Config::new(table.into(), bus.into(), sender.into(), url.into())
    }

    #[test]
    fn each_setting_is_checked_against_its_rule() {
        assert!(config("quota", "quota-bus", "quota@example.com", "https://app.example.com/usage").is_ok());
        let err = config("tp", "b", "q@x.io", "https://x.io").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"TABLE_NAME="tp" is invalid: a DynamoDB table name is 3-255 of a-z A-Z 0-9 _ - ."#
        );
        assert!(matches!(
            config("t/x", "b", "q@x.io", "https://x.io"),
            Err(ConfigError::Invalid { name: "TABLE_NAME", .. })
        ));
        assert!(matches!(
            config("tab", "a b", "q@x.io", "https://x.io"),
            Err(ConfigError::Invalid { name: "EVENT_BUS_NAME", .. })
        ));
        for sender in ["quota", "@x.io", "q@localhost", "q @x.io", "<q@x.io>"] {
            let err = config("tab", "b", sender, "https://x.io").unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: "SENDER_EMAIL", .. }), "{sender}");
        }
        for url in ["ftp://x.io", "https://", "x.io", "https:// x"] {
            let err = config("tab", "b", "q@x.io", url).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: "DASHBOARD_URL", .. }), "{url}");
        }
    }

    #[test]
    fn a_missing_setting_is_named() {
        let err = Config::from_lookup(|name| (name != "SENDER_EMAIL").then(|| "valid-name".to_string())).unwrap_err();
        assert_eq!(err.to_string(), "environment variable SENDER_EMAIL is required");
    }
}
