//! The AWS clients, each configured once: the time bounds of
//! [`crate::timeouts`], and which failures the SDK retries. Endpoints come
//! from the SDK's standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, …), so
//! local runs need no code of their own. Tests take these builders and
//! point them elsewhere (a fault-injecting proxy), so what they exercise is
//! the production configuration.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::interceptors::InterceptorContext;
use aws_sdk_dynamodb::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use crate::timeouts::{self, ClientTimeouts};

/// The one HTTP client every AWS client uses: hyper 1 with rustls on ring.
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The AWS configuration of a Lambda function, built from the variables
/// Lambda sets (`AWS_REGION`, the credentials) and the SDK's standard
/// endpoint variables (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`),
/// and nothing else: no profile files, instance metadata or STS, so none of
/// that code is linked, and nothing is probed at init.
pub fn lambda_config() -> SdkConfig {
    use aws_types::sdk_config::SharedCredentialsProvider;
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http_client())
        .service_config(EndpointVariables { lookup: |name| std::env::var(name).ok() });
    config.set_region(std::env::var("AWS_REGION").ok().map(aws_config::Region::new));
    config.build()
}

/// The SDK's endpoint variables, read as its own loader reads them: the
/// service's (`AWS_ENDPOINT_URL_DYNAMODB`), then the global one, unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
#[derive(Debug)]
struct EndpointVariables {
    lookup: fn(&str) -> Option<String>,
}

impl aws_types::service_config::LoadServiceConfig for EndpointVariables {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let var = |name: &str| (self.lookup)(name).filter(|v| !v.is_empty());
        if var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let service = key.service_id().to_uppercase().replace(' ', "_");
        var(&format!("{}_{service}", key.env())).or_else(|| var(key.env()))
    }
}

/// The AWS configuration of the local tools and tests: the SDK's default
/// chains (profiles, SSO, …), with the same HTTP client.
pub async fn local_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

pub fn timeout_config(t: &ClientTimeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .operation_attempt_timeout(t.attempt)
        .operation_timeout(t.operation)
        .build()
}

pub fn retry_config(t: &ClientTimeouts) -> RetryConfig {
    if t.max_attempts <= 1 {
        return RetryConfig::disabled();
    }
    RetryConfig::standard()
        .with_max_attempts(t.max_attempts)
        .with_initial_backoff(t.initial_backoff)
        .with_max_backoff(t.initial_backoff * 8)
}

/// DynamoDB, retrying `TransactionConflictException` as well as what the
/// SDK retries by itself (throttling, 5xx, lost connections).
pub fn dynamodb(aws: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    let t = &timeouts::DYNAMODB;
    aws_sdk_dynamodb::config::Builder::from(aws)
        .timeout_config(timeout_config(t))
        .retry_config(retry_config(t))
        .retry_classifier(TransactionConflictRetry)
}

/// SES v2: one attempt only (see [`timeouts::SES`]).
pub fn sesv2(aws: &SdkConfig) -> aws_sdk_sesv2::config::Builder {
    let t = &timeouts::SES;
    aws_sdk_sesv2::config::Builder::from(aws).timeout_config(timeout_config(t)).retry_config(retry_config(t))
}

pub fn eventbridge(aws: &SdkConfig) -> aws_sdk_eventbridge::config::Builder {
    let t = &timeouts::EVENTBRIDGE;
    aws_sdk_eventbridge::config::Builder::from(aws).timeout_config(timeout_config(t)).retry_config(retry_config(t))
}

/// On DynamoDB a single-item write to an item that a transaction is writing
/// at that moment fails with `TransactionConflictException` (HTTP 400). The
/// write was not applied, so it is safe to send again; the SDK does not
/// know that, so this classifier tells it. (DynamoDB Local never answers
/// so; the fault tests inject it.)
#[derive(Debug)]
struct TransactionConflictRetry;

const TRANSACTION_CONFLICT: &str = "TransactionConflictException";

impl ClassifyRetry for TransactionConflictRetry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(err) = err.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = err
            .downcast_ref::<UpdateItemError>()
            .and_then(ProvideErrorMetadata::code)
            .or_else(|| err.downcast_ref::<PutItemError>().and_then(ProvideErrorMetadata::code))
            .or_else(|| err.downcast_ref::<DeleteItemError>().and_then(ProvideErrorMetadata::code));
        if code == Some(TRANSACTION_CONFLICT) { RetryAction::transient_error() } else { RetryAction::NoActionIndicated }
    }

    fn name(&self) -> &'static str {
        "TransactionConflictRetry"
    }
}

/// Single-item writes are never sent again once DynamoDB may have applied
/// them: an attempt that timed out, a connection lost after the request
/// left, an answer that could not be read, or a 5xx. The SDK would retry
/// all of those, and a conditional `ADD` resent after it was applied counts
/// twice, or fails its condition and reads as a refusal. What certainly was
/// not applied (throttling, a transaction in the way, no connection made)
/// is still retried. Runs after the SDK's own classifiers and overrides
/// them. Writes that recognise their own repeat (transactions, by their
/// `ClientRequestToken`; a reserve, by its hold) go through a client
/// without it (`store::Store`).
#[derive(Debug)]
pub struct SentOnce;

impl ClassifyRetry for SentOnce {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let server_side = ctx.response().is_some_and(|r| r.status().as_u16() >= 500);
        let ambiguous = if err.is_timeout_error() || err.is_response_error() {
            true
        } else if let Some(connector) = err.as_connector_error() {
            !never_connected(connector)
        } else {
            err.as_operation_error().is_some() && server_side
        };
        if ambiguous { RetryAction::RetryForbidden } else { RetryAction::NoActionIndicated }
    }

    fn name(&self) -> &'static str {
        "SentOnce"
    }

    fn priority(&self) -> aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority;
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether a failed call may still have been carried out: the request may
/// have reached the service (a timeout, a connection lost after sending, an
/// answer that could not be read). `false` when the service answered with
/// an error, the request was never built, or no connection was made. (SES
/// and EventBridge: an error answer is taken as certain; see
/// [`may_have_applied`] for DynamoDB's writes.)
pub fn outcome_unknown<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::ConstructionFailure(_) | SdkError::ServiceError(_) => false,
        SdkError::DispatchFailure(_) => !never_connected(err),
        _ => true,
    }
}

/// Whether a DynamoDB write that failed so may still have been applied:
/// [`outcome_unknown`], or a 5xx (DynamoDB's `InternalServerError`: "an
/// error occurred on the server side"; the write may have been carried
/// out).
pub fn may_have_applied<E>(
    err: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool
where
    E: std::error::Error + 'static,
{
    match err {
        aws_sdk_dynamodb::error::SdkError::ServiceError(service) => service.raw().status().as_u16() >= 500,
        _ => outcome_unknown(err),
    }
}

/// The error chain shows that no connection was made (refused, unreachable,
/// a failed connect or name lookup): nothing was sent.
fn never_connected(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable) {
                return true;
            }
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("dns error") || text.contains("HTTP connect timeout") {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

    fn endpoint(lookup: fn(&str) -> Option<String>, service: &str) -> Option<String> {
        let key = ServiceConfigKey::builder().service_id(service).env("AWS_ENDPOINT_URL").profile("endpoint_url");
        EndpointVariables { lookup }.load_config(key.build().unwrap())
    }

    #[test]
    fn endpoints_come_from_the_sdks_variables() {
        let both = |name: &str| match name {
            "AWS_ENDPOINT_URL_DYNAMODB" => Some("http://127.0.0.1:8000".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".into()),
            _ => None,
        };
        assert_eq!(endpoint(both, "DynamoDB").as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(endpoint(both, "SESv2").as_deref(), Some("http://127.0.0.1:4566"), "the global one");
        let ignored = |name: &str| match name {
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" => Some("TRUE".into()),
            _ => Some("http://127.0.0.1:8000".into()),
        };
        assert_eq!(endpoint(ignored, "DynamoDB"), None);
        let spaced = |name: &str| (name == "AWS_ENDPOINT_URL_EVENT_BRIDGE").then(|| "http://e".into());
        assert_eq!(endpoint(spaced, "Event Bridge").as_deref(), Some("http://e"));
        assert_eq!(endpoint(|_| Some(String::new()), "DynamoDB"), None, "empty is unset");
    }
}
