//! The API's errors: one enum, one mapping to status, code and JSON body.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use crate::store::StoreError;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;
/// `Retry-After` of `OUTCOME_UNKNOWN`: longer, because the write it answers
/// for may still be under way at the store. A retry sooner could be
/// evaluated before it (a keyed retry refused at the limit while the first
/// attempt then counts); by then DynamoDB has answered or dropped it (the
/// service's own bound on one write is 2.5 s).
pub const OUTCOME_UNKNOWN_RETRY_AFTER_SECS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("orgId must be 1-64 characters of A-Z a-z 0-9 _ -")]
    InvalidOrgId,
    #[error("{0} is a per-period resource; only total resources can be released")]
    NotReleasable(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("organization not found")]
    OrgNotFound,
    #[error("unknown resource {0:?}")]
    UnknownResource(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(String),
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("the quota store is unavailable; nothing was recorded; retry shortly")]
    StoreUnavailable,
    #[error(
        "the write was sent but no answer came in time: it may have been recorded; retry with the same \
         Idempotency-Key to get its outcome (without one, a retry may count it twice)"
    )]
    OutcomeUnknown,
    #[error("no such reservation")]
    ReservationNotFound,
    #[error("the reservation was already {}", .0.as_str())]
    ReservationEnded(crate::domain::reservation::Status),
    #[error("{0} reservations are open on this resource; commit or release some first")]
    TooManyReservations(usize),
    #[error("no live grant with this id")]
    GrantNotFound,
    #[error("this resource already carries {0} live grants")]
    TooManyGrants(usize),
    #[error("unknown feature {0:?}")]
    UnknownFeature(String),
    /// A channel refused for its type, URL or events: the code says which.
    #[error("{message}")]
    InvalidChannel { code: &'static str, message: String },
    #[error("no such channel")]
    ChannelNotFound,
    #[error("this organization already has {0} channels; remove one first")]
    TooManyChannels(usize),
}

impl ApiError {
    /// A limit plus the grants kept for it would pass what JSON holds exactly.
    pub fn limit_too_large() -> ApiError {
        ApiError::InvalidRequest(format!(
            "the effective limit (the plan's or the org's, plus live grants) would pass {}",
            crate::domain::MAX_COUNT
        ))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidOrgId
            | ApiError::NotReleasable(_)
            | ApiError::InvalidChannel { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::OrgNotFound
            | ApiError::UnknownResource(_)
            | ApiError::NotFound
            | ApiError::ReservationNotFound
            | ApiError::GrantNotFound
            | ApiError::UnknownFeature(_)
            | ApiError::ChannelNotFound => StatusCode::NOT_FOUND,
            ApiError::ReservationEnded(_)
            | ApiError::TooManyReservations(_)
            | ApiError::TooManyGrants(_)
            | ApiError::TooManyChannels(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StoreUnavailable | ApiError::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "INVALID_REQUEST",
            ApiError::InvalidOrgId => "INVALID_ORG_ID",
            ApiError::NotReleasable(_) => "NOT_RELEASABLE",
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::OrgNotFound => "ORG_NOT_FOUND",
            ApiError::UnknownResource(_) => "UNKNOWN_RESOURCE",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ApiError::StoreUnavailable => "STORE_UNAVAILABLE",
            ApiError::OutcomeUnknown => "OUTCOME_UNKNOWN",
            ApiError::ReservationNotFound => "RESERVATION_NOT_FOUND",
            ApiError::ReservationEnded(status) => match status {
                crate::domain::reservation::Status::Committed => "RESERVATION_COMMITTED",
                crate::domain::reservation::Status::Released => "RESERVATION_RELEASED",
                crate::domain::reservation::Status::Expired => "RESERVATION_EXPIRED",
            },
            ApiError::TooManyReservations(_) => "TOO_MANY_RESERVATIONS",
            ApiError::GrantNotFound => "GRANT_NOT_FOUND",
            ApiError::TooManyGrants(_) => "TOO_MANY_GRANTS",
            ApiError::UnknownFeature(_) => "UNKNOWN_FEATURE",
            ApiError::InvalidChannel { code, .. } => code,
            ApiError::ChannelNotFound => "CHANNEL_NOT_FOUND",
            ApiError::TooManyChannels(_) => "TOO_MANY_CHANNELS",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = super::json(self.status(), &body);
        let headers = response.headers_mut();
        match &self {
            ApiError::StoreUnavailable => {
                headers.insert("retry-after", RETRY_AFTER_SECS.into());
            }
            ApiError::OutcomeUnknown => {
                headers.insert("retry-after", OUTCOME_UNKNOWN_RETRY_AFTER_SECS.into());
            }
            ApiError::MethodNotAllowed(allow) => {
                if let Ok(v) = allow.parse() {
                    headers.insert("allow", v);
                }
            }
            ApiError::Unauthorized => {
                headers.insert("www-authenticate", lambda_http::http::HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::OrgNotFound => ApiError::OrgNotFound,
            StoreError::KeyReused => ApiError::IdempotencyKeyReused,
            StoreError::LimitTooLarge => ApiError::limit_too_large(),
            other => {
                // The cause is for operators, never for clients.
                tracing::error!(error = %other, cause = ?std::error::Error::source(&other).map(ToString::to_string), "store unavailable");
                ApiError::StoreUnavailable
            }
        }
    }
}
