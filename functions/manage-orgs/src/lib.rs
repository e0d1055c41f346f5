//! `manage-orgs`: organizations.
//!
//! - `PUT /v1/orgs/{orgId}` (admin): create (201) or update (200); fields left out keep their value
//! - `GET /v1/orgs/{orgId}` (read): the profile

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery;
use quota_shared::domain::idempotency::IdempotencyKey;
use quota_shared::domain::org::{OrgPatch, OrgPatchBody};
use quota_shared::store::PutOrg;
use quota_shared::{ApiError, Deps};

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::ManageOrgs, |call| async move {
        match call.route.endpoint {
            Endpoint::PutOrg => put_org(deps, &call, req).await,
            Endpoint::GetOrg => api::bounded(get_org(deps, &call)).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn put_org(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: OrgPatchBody = api::body(req)?.unwrap_or_default();
    // A retry must send the same body: the key names it, as sent.
    let named = format!("put-org\n{}", String::from_utf8_lossy(req.body().as_ref()).trim());
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::for_admin(k, &named))?;
    let patch = OrgPatch::parse(body, deps.catalogue).map_err(ApiError::InvalidRequest)?;
    let now = deps.clock.now();
    let actor = call.subject();
    let written = api::bounded_admin(async {
        Ok(deps.store.put_org(call.org(), &patch, actor, idempotency.as_ref(), deps.catalogue, now).await?)
    })
    .await?;
    // Its `PlanChanged`, and any event an earlier request left.
    delivery::flush_outbox(deps, call.org()).await;
    Ok(match written {
        PutOrg::Written { profile, previous } => {
            let status = if previous.is_none() { StatusCode::CREATED } else { StatusCode::OK };
            api::json(status, &profile.to_json())
        }
        PutOrg::Replayed { profile, created } => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            api::replayed(api::json(status, &profile.to_json()))
        }
    })
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn get_org(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    let state = deps.store.org_state(call.org()).await?.ok_or(ApiError::OrgNotFound)?;
    Ok(api::ok(&state.profile.to_json()))
}
