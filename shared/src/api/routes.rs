//! The route table: every route the functions serve, which function owns
//! it, and the scope it needs. `template.yaml` and `infra/openapi.yaml`
//! declare the same (tests/tests/contract.rs holds them to it).

use lambda_http::http::Method;

use super::auth::Scope;
use super::error::ApiError;

/// The Lambda functions; each serves a subset of the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CheckQuota,
    IncrementUsage,
    GetUsage,
    ManageOrgs,
    AdminReset,
    UsageJob,
    ManageChannels,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::CheckQuota,
        Function::IncrementUsage,
        Function::GetUsage,
        Function::ManageOrgs,
        Function::AdminReset,
        Function::UsageJob,
        Function::ManageChannels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::CheckQuota => "check-quota",
            Function::IncrementUsage => "increment-usage",
            Function::GetUsage => "get-usage",
            Function::ManageOrgs => "manage-orgs",
            Function::AdminReset => "admin-reset",
            Function::UsageJob => "usage-job",
            Function::ManageChannels => "manage-channels",
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
    Reserve,
    Commit,
    CancelReservation,
    AddGrant,
    RevokeGrant,
    Features,
    Feature,
    ListOrgs,
    AddChannel,
    ListChannels,
    RemoveChannel,
    ChannelDeliveries,
}

impl Endpoint {
    pub fn function(self) -> Function {
        match self {
            Endpoint::Health
            | Endpoint::Plans
            | Endpoint::GetUsage
            | Endpoint::History
            | Endpoint::Features
            | Endpoint::Feature => Function::GetUsage,
            Endpoint::AdminReset
            | Endpoint::AdminAudit
            | Endpoint::AddGrant
            | Endpoint::RevokeGrant
            | Endpoint::ListOrgs => Function::AdminReset,
            Endpoint::DailyJob => Function::UsageJob,
            Endpoint::PutOrg | Endpoint::GetOrg => Function::ManageOrgs,
            Endpoint::Consume
            | Endpoint::Release
            | Endpoint::SetUsage
            | Endpoint::Reserve
            | Endpoint::Commit
            | Endpoint::CancelReservation => Function::IncrementUsage,
            Endpoint::Check | Endpoint::CheckMany => Function::CheckQuota,
            Endpoint::AddChannel | Endpoint::ListChannels | Endpoint::RemoveChannel | Endpoint::ChannelDeliveries => {
                Function::ManageChannels
            }
        }
    }

    /// The scope a route needs; `None` for the open health route.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Endpoint::Health => None,
            Endpoint::Plans
            | Endpoint::GetOrg
            | Endpoint::Check
            | Endpoint::CheckMany
            | Endpoint::GetUsage
            | Endpoint::History
            | Endpoint::Features
            | Endpoint::Feature => Some(Scope::Read),
            Endpoint::Consume
            | Endpoint::Release
            | Endpoint::SetUsage
            | Endpoint::Reserve
            | Endpoint::Commit
            | Endpoint::CancelReservation => Some(Scope::Write),
            Endpoint::PutOrg
            | Endpoint::AdminReset
            | Endpoint::AdminAudit
            | Endpoint::DailyJob
            | Endpoint::AddGrant
            | Endpoint::RevokeGrant
            | Endpoint::ListOrgs => Some(Scope::Admin),
            Endpoint::AddChannel | Endpoint::ListChannels | Endpoint::RemoveChannel | Endpoint::ChannelDeliveries => {
                Some(Scope::OwnOrg)
            }
        }
    }
}

/// The route table: `(method, path pattern, endpoint)`. `{org}`,
/// `{resource}` and any other `{name}` (the route's id) match one path
/// segment. `template.yaml` declares the same.
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
    (Method::POST, "/v1/orgs/{org}/usage/{resource}/reserve", Endpoint::Reserve),
    (Method::POST, "/v1/orgs/{org}/reservations/{reservationId}/commit", Endpoint::Commit),
    (Method::DELETE, "/v1/orgs/{org}/reservations/{reservationId}", Endpoint::CancelReservation),
    (Method::GET, "/v1/orgs/{org}/features", Endpoint::Features),
    (Method::GET, "/v1/orgs/{org}/features/{feature}", Endpoint::Feature),
    (Method::POST, "/v1/orgs/{org}/channels", Endpoint::AddChannel),
    (Method::GET, "/v1/orgs/{org}/channels", Endpoint::ListChannels),
    (Method::DELETE, "/v1/orgs/{org}/channels/{channelId}", Endpoint::RemoveChannel),
    (Method::GET, "/v1/orgs/{org}/channels/{channelId}/deliveries", Endpoint::ChannelDeliveries),
    (Method::POST, "/v1/admin/orgs/{org}/grants", Endpoint::AddGrant),
    (Method::DELETE, "/v1/admin/orgs/{org}/grants/{grantId}", Endpoint::RevokeGrant),
    (Method::POST, "/v1/admin/orgs/{org}/reset", Endpoint::AdminReset),
    (Method::GET, "/v1/admin/orgs/{org}/audit", Endpoint::AdminAudit),
    (Method::GET, "/v1/admin/orgs", Endpoint::ListOrgs),
    (Method::POST, "/v1/admin/jobs/daily", Endpoint::DailyJob),
];

/// A matched route with its raw path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub org: Option<String>,
    pub resource: Option<String>,
    /// The route's other parameter: a reservation, grant or feature.
    pub id: Option<String>,
}

impl Route {
    /// Matches a method and path exactly, as API Gateway matches routes (a
    /// trailing slash is another path): 404 when no pattern fits the path,
    /// 405 when one does for other methods.
    pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let mut allowed = Vec::new();
        for (m, pattern, endpoint) in ROUTES {
            let Some(mut route) = match_pattern(pattern, path) else {
                continue;
            };
            if m == method {
                route.endpoint = *endpoint;
                return Ok(route);
            }
            allowed.push(m.as_str());
        }
        if allowed.is_empty() { Err(ApiError::NotFound) } else { Err(ApiError::MethodNotAllowed(allowed.join(", "))) }
    }
}

/// The route API Gateway matches a request to, as its event names it: the
/// route key (`POST /v1/orgs/{orgId}/usage/{resource}/consume`, the
/// template's path) and the path parameters, by the template's names.
/// `None` for a request only the `$default` route takes.
pub fn route_key(method: &Method, path: &str) -> Option<(String, Vec<(String, String)>)> {
    ROUTES.iter().filter(|(m, _, _)| m == method).find_map(|(m, pattern, _)| {
        let template = pattern.replace("{org}", "{orgId}");
        let mut params = Vec::new();
        let (mut want, mut got) = (template.split('/'), path.split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return Some((format!("{m} {template}"), params)),
                (Some(w), Some(v)) if w.starts_with('{') && !v.is_empty() => {
                    params.push((w.trim_matches(|c| c == '{' || c == '}').to_string(), v.to_string()));
                }
                (Some(w), Some(v)) if w == v => {}
                _ => return None,
            }
        }
    })
}

/// The parameters of `path` if it fits `pattern` (the endpoint is set by the caller).
fn match_pattern(pattern: &str, path: &str) -> Option<Route> {
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    let mut route = Route { endpoint: Endpoint::Health, org: None, resource: None, id: None };
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(route),
            (Some("{org}"), Some(v)) if !v.is_empty() => route.org = Some(v.to_string()),
            (Some("{resource}"), Some(v)) if !v.is_empty() => route.resource = Some(v.to_string()),
            (Some(p), Some(v)) if p.starts_with('{') && !v.is_empty() => route.id = Some(v.to_string()),
            (Some(p), Some(v)) if p == v => {}
            _ => return None,
        }
    }
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
        let r = Route::parse(&Method::DELETE, "/v1/orgs/acme/reservations/rsv_x").unwrap();
        assert_eq!((r.endpoint, r.id.as_deref()), (Endpoint::CancelReservation, Some("rsv_x")));
        let r = Route::parse(&Method::GET, "/v1/orgs/acme/features/sso").unwrap();
        assert_eq!((r.endpoint, r.id.as_deref()), (Endpoint::Feature, Some("sso")));
        let (key, params) = route_key(&Method::DELETE, "/v1/orgs/acme/reservations/rsv_x").unwrap();
        assert_eq!(key, "DELETE /v1/orgs/{orgId}/reservations/{reservationId}");
        assert_eq!(params, [("orgId".to_string(), "acme".to_string()), ("reservationId".into(), "rsv_x".into())]);
        assert_eq!(route_key(&Method::GET, "/v1/nope"), None);
        // Path parameters stay raw: an encoded id is not a valid org id.
        let r = Route::parse(&Method::GET, "/v1/orgs/a%20b").unwrap();
        assert_eq!(r.org.as_deref(), Some("a%20b"));
    }
}
