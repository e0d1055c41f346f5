//! The HTTP edge, in one place: the route table (`routes`), who is calling
//! (`auth`), the errors and their answers (`error`), and here the request
//! preamble (route, auth, org id), body and query parsing, JSON responses.

pub mod auth;
pub mod error;
pub mod routes;

pub use error::ApiError;
pub use routes::{Endpoint, Function, ROUTES, Route, route_key};

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::catalogue::{Catalogue, ResourceDef};
use crate::domain::org::OrgId;
use crate::store::CounterRef;
use auth::Principal;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request that has passed the preamble: routed, authenticated,
/// authorized, with a valid org id where the route has one.
#[derive(Debug)]
pub struct Call {
    pub route: Route,
    pub principal: Option<Principal>,
    pub org: Option<OrgId>,
}

impl Call {
    /// Routing, authentication (401), org id (400), authorization (403).
    pub fn prepare(req: &Request, function: Function) -> Result<Call, ApiError> {
        let route = Route::parse(req.method(), req.uri().path())?;
        if route.endpoint.function() != function {
            return Err(ApiError::NotFound);
        }
        let Some(scope) = route.endpoint.scope() else {
            return Ok(Call { route, principal: None, org: None });
        };
        let principal = Principal::from_request(req)?;
        let org = route.org.as_deref().map(|o| OrgId::parse(o).ok_or(ApiError::InvalidOrgId)).transpose()?;
        principal.authorize(scope, org.as_ref())?;
        Ok(Call { route, principal: Some(principal), org })
    }

    pub fn org(&self) -> &OrgId {
        self.org.as_ref().expect("routes with {org} always carry one")
    }

    pub fn subject(&self) -> &str {
        self.principal.as_ref().map_or("anonymous", |p| p.subject.as_str())
    }

    /// The route's counter: its org and resource, checked against the
    /// catalogue (404 if unknown).
    pub fn counter<'c>(&'c self, catalogue: &'c Catalogue) -> Result<CounterRef<'c>, ApiError> {
        let (resource, def) = self.resource(catalogue)?;
        Ok(CounterRef { org: self.org(), resource, kind: def.kind, catalogue })
    }

    /// The route's resource, checked against the catalogue (404 if unknown).
    pub fn resource<'c>(&self, catalogue: &'c Catalogue) -> Result<(&str, &'c ResourceDef), ApiError> {
        let name = self.route.resource.as_deref().unwrap_or_default();
        catalogue.resource(name).map(|def| (name, def)).ok_or_else(|| ApiError::UnknownResource(name.to_string()))
    }
}

/// The handlers' shared preamble: prepares the call for `function`
/// (routing, authentication, org id, authorization: [`Call::prepare`]),
/// runs `endpoint` on it, and answers an error with its status and body.
pub async fn serve<F>(req: &Request, function: Function, endpoint: impl FnOnce(Call) -> F) -> Response<Body>
where
    F: std::future::Future<Output = Result<Response<Body>, ApiError>>,
{
    let result = match Call::prepare(req, function) {
        // Boxed, as `bounded` boxes its work: the endpoint's future nests the
        // store's and the delivery's, which would otherwise sit in every
        // caller's frame (debug builds run out of stack, and the compiler of
        // layout depth).
        Ok(call) => Box::pin(endpoint(call)).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// Parses a JSON body; an empty body is `None`. 413 past 64 KiB, 400 for
/// anything malformed, with serde's words on what was wrong.
pub fn body<T: DeserializeOwned>(req: &Request) -> Result<Option<T>, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let invalid = |e: serde_json::Error| ApiError::InvalidRequest(format!("request body: {}", json_error(&e)));
    // Every body is a JSON object; serde alone would also read a struct
    // from an array (`[5]` for `{"amount": 5}`).
    match serde_json::from_slice::<serde_json::Value>(bytes).map_err(invalid)? {
        object @ serde_json::Value::Object(_) => serde_json::from_value(object).map(Some).map_err(invalid),
        _ => Err(ApiError::InvalidRequest("request body: must be a JSON object".into())),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    // serde's message without the line/column suffix, which means nothing to callers of one-line bodies.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A query parameter, if present once.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_string)
}

/// An amount as the API takes it: a JSON integer in `min..=MAX_COUNT`.
pub fn amount(value: Option<&serde_json::Value>, min: i64, default: i64, field: &str) -> Result<i64, ApiError> {
    value.map_or(Ok(default), |v| integer(v, min, crate::domain::MAX_COUNT, field))
}

/// A JSON integer in `min..=max` (`5.0` too, as JSON Schema reads it); 400
/// naming `field` otherwise.
pub fn integer(value: &serde_json::Value, min: i64, max: i64, field: &str) -> Result<i64, ApiError> {
    crate::domain::json_integer(value)
        .filter(|a| (min..=max).contains(a))
        .ok_or_else(|| ApiError::InvalidRequest(format!("{field} must be an integer from {min} to {max}")))
}

/// The header a response carries when it repeats an earlier request's
/// outcome under the same `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, if it sent one, checked and named by
/// `naming` (which says what request the key stands for); 400 when the key
/// is not 1–255 visible ASCII characters.
pub fn idempotency_key(
    req: &Request,
    naming: impl FnOnce(&str) -> Option<crate::domain::idempotency::IdempotencyKey>,
) -> Result<Option<crate::domain::idempotency::IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(naming)
        .map(Some)
        .ok_or_else(|| ApiError::InvalidRequest("Idempotency-Key must be 1-255 visible ASCII characters".into()))
}

/// Marks `response` as the replay of an earlier request's outcome.
pub fn replayed(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(REPLAYED_HEADER, header::HeaderValue::from_static("true"));
    response
}

/// Runs a request's store work within `timeouts::STORE_BUDGET`. Past it,
/// or when the store fails, the request answers `503 STORE_UNAVAILABLE`
/// if its own write (the consume, the grant, …) was never sent, and
/// `503 OUTCOME_UNKNOWN` if it was: it may have been recorded. Only for
/// work that may be abandoned: what follows a committed write (events,
/// emails) runs outside.
pub fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    bounded_for(crate::timeouts::STORE_BUDGET, work)
}

/// [`bounded`] with the budget of an admin's write
/// (`timeouts::ADMIN_STORE_BUDGET`): seconds of retries, so that a grant,
/// a reset or a plan change gets through a burst of consumes on the same
/// counter.
pub fn bounded_admin<T>(
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    bounded_for(crate::timeouts::ADMIN_STORE_BUDGET, work)
}

async fn bounded_for<T>(
    budget: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let store_work = crate::store::Work::within(budget);
    // Boxed: store work nests the SDK's deep futures; on the heap they do
    // not pile up in every caller's frame (debug builds run out of stack).
    let result = store_work.run(Box::pin(work)).await.ok();
    let sent = store_work.own_write_sent();
    match result {
        Some(Err(ApiError::StoreUnavailable)) if sent => {
            tracing::error!("the request's write may have been applied: its outcome is unknown");
            Err(ApiError::OutcomeUnknown)
        }
        Some(result) => result,
        None => {
            tracing::error!(error = %crate::store::StoreError::TimedOut, own_write_sent = sent, "store unavailable");
            Err(if sent { ApiError::OutcomeUnknown } else { ApiError::StoreUnavailable })
        }
    }
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

pub fn ok<T: Serialize + ?Sized>(body: &T) -> Response<Body> {
    json(StatusCode::OK, body)
}
