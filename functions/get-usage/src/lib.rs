//! `get-usage`: reads.
//!
//! - `GET /v1/health` (no auth, no store access)
//! - `GET /v1/plans`: the plan catalogue
//! - `GET /v1/orgs/{orgId}/usage`: every resource of the org (one Query)

use lambda_http::{Body, Request, Response};
use quota_shared::domain::report::org_usage;
use quota_shared::http::{self, Call, Endpoint, Function};
use quota_shared::store::all_counters;
use quota_shared::{ApiError, Deps};

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::GetUsage) {
        Ok(call) => match call.route.endpoint {
            Endpoint::Health => Ok(http::ok(&serde_json::json!({ "status": "ok" }))),
            Endpoint::Plans => Ok(http::ok(deps.catalogue)),
            Endpoint::GetUsage => usage(deps, &call).await,
            _ => Err(ApiError::NotFound),
        },
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn usage(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    let now = deps.clock.now();
    let state = deps
        .store
        .org_state(call.org())
        .await?
        .ok_or(ApiError::OrgNotFound)?;
    let counters = all_counters(&state, deps.catalogue, now);
    Ok(http::ok(&org_usage(
        &state.profile,
        &counters,
        deps.catalogue,
        now,
    )))
}
