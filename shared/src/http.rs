//! HTTP plumbing shared by the functions: the route table, the request
//! preamble (route, auth, org id), body and query parsing, JSON responses.

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{Principal, Scope};
use crate::domain::catalogue::{Catalogue, ResourceDef};
use crate::domain::org::OrgId;
use crate::error::ApiError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The Lambda functions; each serves a subset of the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CheckQuota,
    IncrementUsage,
    GetUsage,
    ManageOrgs,
    AdminReset,
    UsageJob,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::CheckQuota => "check-quota",
            Function::IncrementUsage => "increment-usage",
            Function::GetUsage => "get-usage",
            Function::ManageOrgs => "manage-orgs",
            Function::AdminReset => "admin-reset",
            Function::UsageJob => "usage-job",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Plans,
    PutOrg,
    GetOrg,
    Consume,
    Check,
    CheckMany,
    Release,
    SetUsage,
    GetUsage,
    History,
    AdminReset,
    AdminAudit,
    DailyJob,
}

impl Endpoint {
    pub fn function(self) -> Function {
        match self {
            Endpoint::Health | Endpoint::Plans | Endpoint::GetUsage | Endpoint::History => Function::GetUsage,
            Endpoint::AdminReset | Endpoint::AdminAudit => Function::AdminReset,
            Endpoint::DailyJob => Function::UsageJob,
            Endpoint::PutOrg | Endpoint::GetOrg => Function::ManageOrgs,
            Endpoint::Consume | Endpoint::Release | Endpoint::SetUsage => Function::IncrementUsage,
            Endpoint::Check | Endpoint::CheckMany => Function::CheckQuota,
        }
    }

    /// The scope a route needs; `None` for the open health route.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Endpoint::Health => None,
            Endpoint::Plans | Endpoint::GetOrg | Endpoint::Check | Endpoint::CheckMany | Endpoint::GetUsage => {
                Some(Scope::Read)
            }
            Endpoint::Consume | Endpoint::Release | Endpoint::SetUsage => Some(Scope::Write),
            Endpoint::History => Some(Scope::Read),
            Endpoint::PutOrg | Endpoint::AdminReset | Endpoint::AdminAudit | Endpoint::DailyJob => Some(Scope::Admin),
        }
    }
}

/// The route table: `(method, path pattern, endpoint)`. `{org}` and
/// `{resource}` match one path segment. `template.yaml` declares the same.
pub const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/v1/health", Endpoint::Health),
    (Method::GET, "/v1/plans", Endpoint::Plans),
    (Method::PUT, "/v1/orgs/{org}", Endpoint::PutOrg),
    (Method::GET, "/v1/orgs/{org}", Endpoint::GetOrg),
    (Method::POST, "/v1/orgs/{org}/check", Endpoint::CheckMany),
    (Method::GET, "/v1/orgs/{org}/usage", Endpoint::GetUsage),
    (Method::PUT, "/v1/orgs/{org}/usage/{resource}", Endpoint::SetUsage),
    (Method::POST, "/v1/orgs/{org}/usage/{resource}/consume", Endpoint::Consume),
    (Method::POST, "/v1/orgs/{org}/usage/{resource}/release", Endpoint::Release),
    (Method::GET, "/v1/orgs/{org}/usage/{resource}/check", Endpoint::Check),
    (Method::GET, "/v1/orgs/{org}/usage/{resource}/history", Endpoint::History),
    (Method::POST, "/v1/admin/orgs/{org}/reset", Endpoint::AdminReset),
    (Method::GET, "/v1/admin/orgs/{org}/audit", Endpoint::AdminAudit),
    (Method::POST, "/v1/admin/jobs/daily", Endpoint::DailyJob),
];

/// A matched route with its raw path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub org: Option<String>,
    pub resource: Option<String>,
}

impl Route {
    /// Matches a method and path exactly, as API Gateway matches routes (a
    /// trailing slash is another path): 404 when no pattern fits the path,
    /// 405 when one does for other methods.
    pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let mut allowed = Vec::new();
        for (m, pattern, endpoint) in ROUTES {
            let Some((org, resource)) = match_pattern(pattern, path) else {
                continue;
            };
            if m == method {
                return Ok(Route { endpoint: *endpoint, org, resource });
            }
            allowed.push(m.as_str());
        }
        if allowed.is_empty() { Err(ApiError::NotFound) } else { Err(ApiError::MethodNotAllowed(allowed.join(", "))) }
    }
}

fn match_pattern(pattern: &str, path: &str) -> Option<(Option<String>, Option<String>)> {
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    let (mut org, mut resource) = (None, None);
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some((org, resource)),
            (Some("{org}"), Some(v)) if !v.is_empty() => org = Some(v.to_string()),
            (Some("{resource}"), Some(v)) if !v.is_empty() => resource = Some(v.to_string()),
            (Some(p), Some(v)) if p == v => {}
            _ => return None,
        }
    }
}

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

    /// The route's resource, checked against the catalogue (404 if unknown).
    pub fn resource<'c>(&self, catalogue: &'c Catalogue) -> Result<(&str, &'c ResourceDef), ApiError> {
        let name = self.route.resource.as_deref().unwrap_or_default();
        catalogue.resource(name).map(|def| (name, def)).ok_or_else(|| ApiError::UnknownResource(name.to_string()))
    }
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
    let max = crate::domain::org::MAX_COUNT;
    match value {
        None => Ok(default),
        Some(v) => crate::domain::json_integer(v)
            .filter(|a| (min..=max).contains(a))
            .ok_or_else(|| ApiError::InvalidRequest(format!("{field} must be an integer from {min} to {max}"))),
    }
}

/// Runs a request's store work within `timeouts::STORE_BUDGET`; past it,
/// the request answers `503 STORE_UNAVAILABLE`. Only for work that may be
/// abandoned: what follows a committed write (events, emails) runs outside.
pub async fn bounded<T>(work: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    // Boxed: store work nests the SDK's deep futures; on the heap they do
    // not pile up in every caller's frame (debug builds run out of stack).
    crate::timeouts::within(crate::timeouts::STORE_BUDGET, Box::pin(work)).await.unwrap_or_else(|| {
        tracing::error!(error = %crate::store::StoreError::TimedOut, "store unavailable");
        Err(ApiError::StoreUnavailable)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = Route::parse(&Method::POST, "/v1/orgs/acme/usage/contacts/consume").unwrap();
        assert_eq!(r.endpoint, Endpoint::Consume);
        assert_eq!(r.org.as_deref(), Some("acme"));
        assert_eq!(r.resource.as_deref(), Some("contacts"));
        assert!(
            matches!(Route::parse(&Method::GET, "/v1/orgs/acme/"), Err(ApiError::NotFound)),
            "exact, as the gateway"
        );
        assert!(matches!(Route::parse(&Method::GET, "/v1/nope"), Err(ApiError::NotFound)));
        assert!(matches!(Route::parse(&Method::GET, "/v1/orgs//usage"), Err(ApiError::NotFound)));
        match Route::parse(&Method::DELETE, "/v1/orgs/acme") {
            Err(ApiError::MethodNotAllowed(allow)) => assert_eq!(allow, "PUT, GET"),
            other => panic!("{other:?}"),
        }
        // Path parameters stay raw: an encoded id is not a valid org id.
        let r = Route::parse(&Method::GET, "/v1/orgs/a%20b").unwrap();
        assert_eq!(r.org.as_deref(), Some("a%20b"));
    }
}
