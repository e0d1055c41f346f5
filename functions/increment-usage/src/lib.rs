//! `increment-usage`: the writes to a counter.
//!
//! - `POST /v1/orgs/{orgId}/usage/{resource}/consume` `{"amount": n}`, optional `Idempotency-Key`
//! - `POST /v1/orgs/{orgId}/usage/{resource}/release` `{"amount": n}` (`total` resources)
//! - `PUT  /v1/orgs/{orgId}/usage/{resource}` `{"value": n}` (reconciliation, audited)
//! - `POST /v1/orgs/{orgId}/usage/{resource}/reserve` `{"amount": n, "ttlSeconds"?: s}`, optional `Idempotency-Key`
//! - `POST /v1/orgs/{orgId}/reservations/{reservationId}/commit` `{"amount"?: actual}`
//! - `DELETE /v1/orgs/{orgId}/reservations/{reservationId}`

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery;
use quota_shared::domain::catalogue::ResourceKind;
use quota_shared::domain::decision::{Consumed, Decision};
use quota_shared::domain::idempotency::IdempotencyKey;
use quota_shared::domain::reservation::{self, Outcome, ReservationId, Status};
use quota_shared::domain::usage::Counter;
use quota_shared::domain::usage::Reason;
use quota_shared::store::{CounterRef, End, Ended, Reserved};
use quota_shared::{ApiError, Deps};
use serde::Deserialize;

/// Set on a response that repeats an earlier consume with the same key.
pub use quota_shared::api::REPLAYED_HEADER;

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::IncrementUsage, |call| async move {
        match call.route.endpoint {
            Endpoint::Consume => consume(deps, &call, req).await,
            Endpoint::Release => release(deps, &call, req).await,
            Endpoint::SetUsage => set_usage(deps, &call, req).await,
            Endpoint::Reserve => reserve(deps, &call, req).await,
            Endpoint::Commit => end(deps, &call, req).await,
            Endpoint::CancelReservation => end(deps, &call, req).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
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
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::parse(k, resource, amount))?;
    let now = deps.clock.now();
    let (consumed, expired) = api::bounded(async {
        Ok(deps
            .store
            .consume(call.org(), resource, def.kind, amount, idempotency.as_ref(), deps.catalogue, now)
            .await?)
    })
    .await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    Ok(match consumed {
        Consumed::Admitted { counter, before } => {
            delivery::after_increase(deps, &counter, before, now).await;
            api::ok(&Decision::with_reason(&counter, None, deps.catalogue, now))
        }
        Consumed::Replayed { counter } => {
            api::replayed(api::ok(&Decision::with_reason(&counter, None, deps.catalogue, now)))
        }
        Consumed::Refused { counter, reason } => {
            let status = refusal_status(reason);
            tracing::info!(reason = reason.as_str(), "consume refused");
            api::json(status, &Decision::with_reason(&counter.at(now), Some(reason), deps.catalogue, now))
        }
    })
}

/// The status a refusal answers with: 429 at the limit, 402 when the trial ended.
fn refusal_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        Reason::TrialExpired => StatusCode::PAYMENT_REQUIRED,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReserveBody {
    #[serde(default, deserialize_with = "quota_shared::domain::present")]
    amount: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "quota_shared::domain::present")]
    ttl_seconds: Option<serde_json::Value>,
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn reserve(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let at = call.counter(deps.catalogue)?;
    let resource = at.resource;
    let body: ReserveBody =
        api::body(req)?.ok_or_else(|| ApiError::InvalidRequest("request body: {\"amount\": n} is required".into()))?;
    let amount = body
        .amount
        .as_ref()
        .ok_or_else(|| ApiError::InvalidRequest("amount is required".into()))
        .and_then(|a| api::amount(Some(a), 1, 1, "amount"))?;
    let ttl = match body.ttl_seconds.as_ref() {
        None => reservation::DEFAULT_TTL_SECONDS,
        Some(v) => api::integer(v, 1, reservation::MAX_TTL_SECONDS, "ttlSeconds")?,
    };
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::for_reserve(k, resource, amount, ttl))?;
    let now = deps.clock.now();
    let (reserved, expired) =
        api::bounded(async { Ok(deps.store.reserve(&at, amount, ttl, idempotency.as_ref(), now).await?) }).await?;
    let answer = |id: &ReservationId, counter: &Counter| {
        serde_json::json!({
            "reservationId": id.encode(),
            "resource": resource,
            "amount": id.amount,
            "expiresAt": quota_shared::domain::rfc3339(id.expires_at),
            "decision": Decision::with_reason(counter, None, deps.catalogue, now),
        })
    };
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    Ok(match reserved {
        Reserved::Held { id, counter } => api::json(StatusCode::CREATED, &answer(&id, &counter)),
        Reserved::Replayed { id, counter } => api::replayed(api::json(StatusCode::CREATED, &answer(&id, &counter))),
        Reserved::Refused { counter, reason } => {
            tracing::info!(reason = reason.as_str(), "reserve refused");
            let status = refusal_status(reason);
            api::json(status, &Decision::with_reason(&counter.at(now), Some(reason), deps.catalogue, now))
        }
        Reserved::TooMany => return Err(ApiError::TooManyReservations(reservation::MAX_OPEN)),
    })
}

/// `POST …/commit` and `DELETE …/reservations/{id}`.
#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn end(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = call.route.id.as_deref().and_then(ReservationId::decode).ok_or(ApiError::ReservationNotFound)?;
    let def = deps.catalogue.resource(&id.resource).ok_or(ApiError::ReservationNotFound)?;
    let end = match call.route.endpoint {
        Endpoint::Commit => {
            let body: AmountBody = api::body(req)?.unwrap_or_default();
            let actual = body.amount.as_ref().map(|a| api::amount(Some(a), 0, 0, "amount")).transpose()?;
            End::Commit(actual)
        }
        _ => {
            if !req.body().is_empty() {
                return Err(ApiError::InvalidRequest("DELETE takes no body".into()));
            }
            End::Release
        }
    };
    let now = deps.clock.now();
    // One store budget for the whole: the transaction and, for a commit that
    // recorded units, the read of the counter it left (for the threshold
    // check, and the usage the answer shows).
    let (ended, expired, counter) = api::bounded(async {
        let (ended, mut expired) = deps.store.end_reservation(call.org(), &id, end, now).await?;
        // A commit's answer, first or repeated, shows the usage its units are in.
        let committed = |o: &Outcome| matches!(end, End::Commit(_)) && o.status == Status::Committed && o.used > 0;
        let counter = match &ended {
            Ended::Done(outcome) | Ended::Before(outcome) if committed(outcome) => {
                // Up to date, so that a threshold notice it owes is claimed
                // on the limit the table holds.
                let at =
                    CounterRef { org: call.org(), resource: &id.resource, kind: def.kind, catalogue: deps.catalogue };
                let (counter, swept) = deps.store.current(&at, now).await?;
                expired.extend(swept);
                Some(counter.at(now))
            }
            Ended::Refused { counter, .. } => Some(counter.clone()),
            _ => None,
        };
        Ok((ended, expired, counter))
    })
    .await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    let first_time = matches!(ended, Ended::Done(_));
    let outcome = match ended {
        Ended::Done(outcome) => outcome,
        Ended::Before(first) => match (end, first.status) {
            // A repeat answers the first outcome; ending it another way is a conflict.
            (End::Commit(_), Status::Committed) | (End::Release, Status::Released | Status::Expired) => first,
            (_, status) => return Err(ApiError::ReservationEnded(status)),
        },
        Ended::NotFound => return Err(ApiError::ReservationNotFound),
        Ended::Refused { counter, reason } => {
            tracing::info!(reason = reason.as_str(), "commit refused");
            let status = refusal_status(reason);
            return Ok(api::json(status, &Decision::with_reason(&counter, Some(reason), deps.catalogue, now)));
        }
    };
    let mut body = serde_json::to_value(&outcome).unwrap_or_default();
    if let Some(counter) = counter {
        if first_time {
            // Units recorded may cross a threshold.
            delivery::after_increase(deps, &counter, None, now).await;
        }
        body["usage"] = serde_json::to_value(counter.usage(now)).unwrap_or_default();
    }
    Ok(api::ok(&body))
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn release(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let at = call.counter(deps.catalogue)?;
    if at.kind != ResourceKind::Total {
        return Err(ApiError::NotReleasable(at.resource.to_string()));
    }
    let body: AmountBody = api::body(req)?.unwrap_or_default();
    let amount = api::amount(body.amount.as_ref(), 1, 1, "amount")?;
    let now = deps.clock.now();
    let (counter, expired) = api::bounded(async { Ok(deps.store.release(&at, amount, now).await?) }).await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    Ok(api::ok(&serde_json::json!({ "usage": counter.usage(now) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    value: serde_json::Value,
}

#[tracing::instrument(skip_all, fields(org = %call.org(), resource = call.route.resource.as_deref()))]
async fn set_usage(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let at = call.counter(deps.catalogue)?;
    // Setting a period's count is a reset by another name, and the count is
    // what the period is billed on: an org's own token may not.
    let org_bound =
        call.principal.as_ref().is_some_and(|p| matches!(p.binding, quota_shared::api::auth::Binding::Org(_)));
    if org_bound && at.kind == ResourceKind::Period {
        return Err(ApiError::Forbidden("an org-bound token cannot set the count of a per-period resource"));
    }
    let body: SetBody =
        api::body(req)?.ok_or_else(|| ApiError::InvalidRequest("request body: {\"value\": n} is required".into()))?;
    let value = api::amount(Some(&body.value), 0, 0, "value")?;
    let now = deps.clock.now();
    let (before, after, expired) =
        api::bounded(async { Ok(deps.store.set_usage(&at, value, call.subject(), now).await?) }).await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    delivery::after_increase(deps, &after, Some(before.used), now).await;
    Ok(api::ok(&serde_json::json!({ "usage": after.usage(now) })))
}
