//! `manage-orgs`: organizations.
//!
//! - `PUT /v1/orgs/{orgId}` (admin): create (201) or update (200); fields left out keep their value
//! - `GET /v1/orgs/{orgId}` (read): the profile

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::domain::events::PlanChanged;
use quota_shared::domain::org::{OrgPatch, OrgPatchBody};
use quota_shared::{ApiError, Deps};

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::ManageOrgs) {
        Ok(call) => match call.route.endpoint {
            Endpoint::PutOrg => put_org(deps, &call, &req).await,
            Endpoint::GetOrg => api::bounded(get_org(deps, &call)).await,
            _ => Err(ApiError::NotFound),
        },
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn put_org(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: OrgPatchBody = api::body(req)?.unwrap_or_default();
    let patch = OrgPatch::parse(body, deps.catalogue).map_err(ApiError::InvalidRequest)?;
    let now = deps.clock.now();
    let (profile, previous) = api::bounded_admin(async {
        Ok(deps.store.put_org(call.org(), &patch, call.subject(), deps.catalogue, now).await?)
    })
    .await?;
    if let Some(before) = previous.as_ref().filter(|b| b.plan != profile.plan) {
        let event = PlanChanged {
            org_id: profile.org_id.clone(),
            from: before.plan.clone(),
            to: profile.plan.clone(),
            actor: call.subject().to_string(),
            at: now,
        };
        deps.events.publish_or_log(&event).await;
    }
    let status = if previous.is_none() { StatusCode::CREATED } else { StatusCode::OK };
    Ok(api::json(status, &profile.to_json()))
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn get_org(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    let state = deps.store.org_state(call.org()).await?.ok_or(ApiError::OrgNotFound)?;
    Ok(api::ok(&state.profile.to_json()))
}
