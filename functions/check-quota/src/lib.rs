//! `check-quota`: the consume decision without recording anything.
//!
//! - `GET  /v1/orgs/{orgId}/usage/{resource}/check?amount=n` (one GetItem)
//! - `POST /v1/orgs/{orgId}/check` with `{"resources": {r: n, …}}` (one Query)

use std::collections::BTreeMap;

use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::domain::decision::Decision;
use quota_shared::{ApiError, Deps};
use serde::Deserialize;

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::CheckQuota, |call| async move {
        match call.route.endpoint {
            Endpoint::Check => api::bounded(check(deps, &call, req)).await,
            Endpoint::CheckMany => api::bounded(check_many(deps, &call, req)).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn check(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let (resource, def) = call.resource(deps.catalogue)?;
    let amount = match api::query(req, "amount") {
        None => 1,
        Some(text) => {
            let value = text.parse::<i64>().ok().map(serde_json::Value::from);
            api::amount(Some(&value.unwrap_or_default()), 0, 1, "amount")?
        }
    };
    let now = deps.clock.now();
    let counter = deps.store.counter(call.org(), resource, def.kind, deps.catalogue, now).await?;
    Ok(api::ok(&Decision::evaluate(&counter.at(now), amount, deps.catalogue, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckManyBody {
    resources: BTreeMap<String, serde_json::Value>,
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn check_many(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: CheckManyBody = api::body(req)?
        .ok_or_else(|| ApiError::InvalidRequest("request body: {\"resources\": {…}} is required".into()))?;
    if body.resources.is_empty() {
        return Err(ApiError::InvalidRequest("resources must name at least one resource".into()));
    }
    let mut wanted = BTreeMap::new();
    for (resource, amount) in &body.resources {
        if deps.catalogue.resource(resource).is_none() {
            return Err(ApiError::UnknownResource(resource.clone()));
        }
        wanted.insert(resource.as_str(), api::amount(Some(amount), 0, 1, &format!("resources.{resource}"))?);
    }
    let now = deps.clock.now();
    let state = deps.store.org_state(call.org()).await?.ok_or(ApiError::OrgNotFound)?;
    let decisions: BTreeMap<String, Decision> = state
        .counters_at(deps.catalogue, now)
        .into_iter()
        .filter_map(|c| {
            let amount = *wanted.get(c.resource.as_str())?;
            Some((c.resource.clone(), Decision::evaluate(&c, amount, deps.catalogue, now)))
        })
        .collect();
    let allowed = decisions.values().all(|d| d.allowed);
    Ok(api::ok(&serde_json::json!({ "allowed": allowed, "decisions": decisions })))
}
