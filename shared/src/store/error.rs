//! What can go wrong in the store, with its cause kept for the logs. All
//! but `OrgNotFound` and `KeyReused` mean the store cannot do the work
//! right now: the API answers them with 503 and never shows their text.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::attrs::Malformed;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("organization not found")]
    OrgNotFound,
    #[error("idempotency key reused with a different request")]
    KeyReused,
    #[error("the effective limit would pass 2^53 - 1")]
    LimitTooLarge,
    /// No connection was made: the request never reached DynamoDB.
    #[error("DynamoDB unreachable: {summary}")]
    Unreachable {
        summary: String,
        #[source]
        source: BoxError,
    },
    /// The request was sent and no answer said what became of it: the
    /// attempt timed out, the connection was lost after it left, the answer
    /// could not be read, or DynamoDB answered 5xx. A write may have been
    /// applied.
    #[error("DynamoDB gave no usable answer: {summary}")]
    NoAnswer {
        summary: String,
        #[source]
        source: BoxError,
    },
    /// DynamoDB answered with an error the SDK's retries did not overcome
    /// (throttling that went on, a validation error).
    #[error("DynamoDB refused the request: {code}: {message}")]
    Rejected {
        code: String,
        message: String,
        #[source]
        source: BoxError,
    },
    /// The request's store budget (`timeouts::STORE_BUDGET`) ran out.
    #[error("the request's store budget ran out")]
    TimedOut,
    /// A read-decide-write loop or a transaction kept meeting other writes.
    #[error("{0} kept meeting concurrent writes")]
    Contended(&'static str),
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("plan {plan:?} has no entry for resource {resource:?}")]
    NotInCatalogue { plan: String, resource: String },
    #[error("request could not be built: {0}")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
}

impl StoreError {
    /// Whether a write that failed so may still have been applied.
    pub fn may_have_applied(&self) -> bool {
        matches!(self, StoreError::NoAnswer { .. } | StoreError::TimedOut)
    }
}

impl<E> From<SdkError<E, HttpResponse>> for StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let unknown = crate::clients::may_have_applied(&err);
        match &err {
            SdkError::ServiceError(service) if !unknown => StoreError::Rejected {
                code: service.err().code().unwrap_or("unknown").to_string(),
                message: service.err().message().unwrap_or_default().to_string(),
                source: Box::new(err),
            },
            SdkError::TimeoutError(_) => {
                StoreError::NoAnswer { summary: "no answer within the time bounds".into(), source: Box::new(err) }
            }
            _ if unknown => StoreError::NoAnswer { summary: root_cause(&err), source: Box::new(err) },
            _ => StoreError::Unreachable { summary: root_cause(&err), source: Box::new(err) },
        }
    }
}

/// The innermost cause's text: "Connection refused (os error 111)" rather
/// than the SDK's layers around it.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
