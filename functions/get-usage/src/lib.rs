//! `get-usage`: reads.
//!
//! - `GET /v1/health` (no auth, no store access)
//! - `GET /v1/plans`: the plan catalogue
//! - `GET /v1/orgs/{orgId}/usage`: every resource of the org (one Query)
//! - `GET /v1/orgs/{orgId}/usage/{resource}/history?days=30`: daily snapshots
//! - `GET /v1/orgs/{orgId}/features`: every feature, its value and source (one GetItem)
//! - `GET /v1/orgs/{orgId}/features/{feature}`: one feature (one GetItem)

use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::domain::feature;
use quota_shared::domain::report::org_usage;
use quota_shared::{ApiError, Deps};

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::GetUsage, |call| async move {
        match call.route.endpoint {
            Endpoint::Health => Ok(api::ok(&serde_json::json!({ "status": "ok" }))),
            Endpoint::Plans => Ok(api::ok(deps.catalogue)),
            Endpoint::GetUsage => api::bounded(usage(deps, &call)).await,
            Endpoint::History => api::bounded(history(deps, &call, req)).await,
            Endpoint::Features | Endpoint::Feature => api::bounded(features(deps, &call)).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn usage(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    let now = deps.clock.now();
    let state = deps.store.org_state(call.org()).await?.ok_or(ApiError::OrgNotFound)?;
    let counters = state.counters_at(deps.catalogue, now);
    Ok(api::ok(&org_usage(&state.profile, &counters, deps.catalogue, now)))
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn features(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    // An unknown feature is named as such before the org is looked up.
    let wanted = call.route.id.as_deref();
    if let Some(name) = wanted.filter(|f| !deps.catalogue.features.contains_key(*f)) {
        return Err(ApiError::UnknownFeature(name.to_string()));
    }
    let profile = deps.store.profile(call.org()).await?.ok_or(ApiError::OrgNotFound)?;
    Ok(match wanted {
        Some(name) => api::ok(&feature::entitlement(&profile, name, deps.catalogue)),
        None => api::ok(&serde_json::json!({
            "orgId": call.org(),
            "plan": profile.plan,
            "features": feature::entitlements(&profile, deps.catalogue),
        })),
    })
}

/// Most days of history one request may ask for.
pub const MAX_HISTORY_DAYS: i64 = 366;

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn history(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let (resource, _) = call.resource(deps.catalogue)?;
    let days =
        match api::query(req, "days") {
            None => 30,
            Some(text) => text.parse::<i64>().ok().filter(|d| (1..=MAX_HISTORY_DAYS).contains(d)).ok_or_else(|| {
                ApiError::InvalidRequest(format!("days must be an integer from 1 to {MAX_HISTORY_DAYS}"))
            })?,
        };
    let today = deps.clock.now().date_naive();
    let from = today - chrono::Duration::days(days - 1);
    let snapshots = deps.store.history(call.org(), resource, from, today).await?;
    if snapshots.is_empty() && deps.store.profile(call.org()).await?.is_none() {
        return Err(ApiError::OrgNotFound);
    }
    Ok(api::ok(&serde_json::json!({
        "orgId": call.org(),
        "resource": resource,
        "from": from.to_string(),
        "to": today.to_string(),
        "days": snapshots,
    })))
}
