//! `increment-usage`: the writes to a counter.
//!
//! - `POST /v1/orgs/{orgId}/usage/{resource}/consume` `{"amount": n}`, optional `Idempotency-Key`
//! - `POST /v1/orgs/{orgId}/usage/{resource}/release` `{"amount": n}` (`total` resources)
//! - `PUT  /v1/orgs/{orgId}/usage/{resource}` `{"value": n}` (reconciliation, audited)

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery;
use quota_shared::domain::catalogue::ResourceKind;
use quota_shared::domain::decision::{Consumed, Decision, Reason};
use quota_shared::domain::idempotency::IdempotencyKey;
use quota_shared::{ApiError, Deps};
use serde::Deserialize;

/// Set on a response that repeats an earlier consume with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let result = match Call::prepare(&req, Function::IncrementUsage) {
        Ok(call) => match call.route.endpoint {
            Endpoint::Consume => consume(deps, &call, &req).await,
            Endpoint::Release => release(deps, &call, &req).await,
            Endpoint::SetUsage => set_usage(deps, &call, &req).await,
            _ => Err(ApiError::NotFound),
        },
        Err(e) => Err(e),
    };
    result.unwrap_or_else(ApiError::into_response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AmountBody {
    #[serde(default, deserialize_with = "quota_shared::domain::present")]
    amount: Option<serde_json::Value>,
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn consume(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let (resource, def) = call.resource(deps.catalogue)?;
    let body: AmountBody = api::body(req)?.unwrap_or_default();
    let amount = api::amount(body.amount.as_ref(), 1, 1, "amount")?;
    let idempotency = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|k| IdempotencyKey::parse(k, resource, amount)).ok_or_else(|| {
            ApiError::InvalidRequest("Idempotency-Key must be 1-255 visible ASCII characters".into())
        })?),
    };
    let now = deps.clock.now();
    let consumed = api::bounded(async {
        Ok(deps
            .store
            .consume(call.org(), resource, def.kind, amount, idempotency.as_ref(), deps.catalogue, now)
            .await?)
    })
    .await?;
    Ok(match consumed {
        Consumed::Admitted { counter, before } => {
            delivery::after_increase(deps, &counter, before, now).await;
            api::ok(&Decision::with_reason(&counter, None, deps.catalogue, now))
        }
        Consumed::Replayed { counter } => {
            let mut response = api::ok(&Decision::with_reason(&counter, None, deps.catalogue, now));
            response.headers_mut().insert(REPLAYED_HEADER, "true".parse().expect("static header"));
            response
        }
        Consumed::Refused { counter, reason } => {
            let status = match reason {
                Reason::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
                Reason::TrialExpired => StatusCode::PAYMENT_REQUIRED,
            };
            tracing::info!(reason = reason.as_str(), "consume refused");
            api::json(status, &Decision::with_reason(&counter.at(now), Some(reason), deps.catalogue, now))
        }
    })
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn release(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let (resource, def) = call.resource(deps.catalogue)?;
    if def.kind != ResourceKind::Total {
        return Err(ApiError::NotReleasable(resource.to_string()));
    }
    let body: AmountBody = api::body(req)?.unwrap_or_default();
    let amount = api::amount(body.amount.as_ref(), 1, 1, "amount")?;
    let now = deps.clock.now();
    let counter = api::bounded(async {
        Ok(deps.store.release(call.org(), resource, def.kind, amount, deps.catalogue, now).await?)
    })
    .await?;
    Ok(api::ok(&serde_json::json!({ "usage": counter.usage(now) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    value: serde_json::Value,
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn set_usage(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let (resource, def) = call.resource(deps.catalogue)?;
    // Setting a period's count is a reset by another name, and the count is
    // what the period is billed on: an org's own token may not.
    let org_bound =
        call.principal.as_ref().is_some_and(|p| matches!(p.binding, quota_shared::api::auth::Binding::Org(_)));
    if org_bound && def.kind == ResourceKind::Period {
        return Err(ApiError::Forbidden("an org-bound token cannot set the count of a per-period resource"));
    }
    let body: SetBody =
        api::body(req)?.ok_or_else(|| ApiError::InvalidRequest("request body: {\"value\": n} is required".into()))?;
    let value = api::amount(Some(&body.value), 0, 0, "value")?;
    let now = deps.clock.now();
    let (before, after) = api::bounded(async {
        Ok(deps.store.set_usage(call.org(), resource, def.kind, value, call.subject(), deps.catalogue, now).await?)
    })
    .await?;
    delivery::after_increase(deps, &after, Some(before.used), now).await;
    Ok(api::ok(&serde_json::json!({ "usage": after.usage(now) })))
}
