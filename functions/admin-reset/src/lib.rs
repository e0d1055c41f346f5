//! `admin-reset`: platform-admin actions on an org, each audit-logged.
//!
//! - `POST /v1/admin/orgs/{orgId}/reset` `{"resource"?: r, "reason": "…"}`:
//!   the current period's count to 0 and its thresholds re-armed, with the
//!   audit entry in the same transaction; without `resource`, every `period` resource
//! - `GET /v1/admin/orgs/{orgId}/audit?limit=n`: the audit log, newest first
//! - `POST /v1/admin/orgs/{orgId}/grants` `{"resource", "amount", "expiresAt"?, "reason"}`:
//!   `amount` more units until `expiresAt` (default: the end of the current period)
//! - `DELETE /v1/admin/orgs/{orgId}/grants/{grantId}`: revokes a live grant
//! - `GET /v1/admin/orgs?limit=n&cursor=c&filter=f`: the orgs, a page at a
//!   time, each with how much it is at risk

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::delivery;
use quota_shared::domain::audit::AuditEntry;
use quota_shared::domain::catalogue::ResourceKind;
use quota_shared::domain::events::{Pending, QuotaRecovered, QuotaReset, RecoveryCause, new_event_id};
use quota_shared::domain::grant::{Grant, GrantBody, GrantDetails, GrantRequest, MAX_GRANTS};
use quota_shared::domain::idempotency::IdempotencyKey;
use quota_shared::domain::usage::Counter;
use quota_shared::store::{CountChange, CounterRef, Granted, Revoked};
use quota_shared::{ApiError, Deps};
use serde::Deserialize;

/// Longest accepted reason, in characters.
pub const MAX_REASON: usize = 1000;
/// Most audit entries one request returns.
pub const MAX_AUDIT_ENTRIES: usize = 500;

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::AdminReset, |call| async move {
        match call.route.endpoint {
            Endpoint::AdminReset => reset(deps, &call, req).await,
            Endpoint::AdminAudit => api::bounded(audit(deps, &call, req)).await,
            Endpoint::AddGrant => add_grant(deps, &call, req).await,
            Endpoint::RevokeGrant => revoke_grant(deps, &call, req).await,
            Endpoint::ListOrgs => api::bounded(list_orgs(deps, req)).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(default, deserialize_with = "quota_shared::domain::present")]
    resource: Option<String>,
    #[serde(default, deserialize_with = "quota_shared::domain::present")]
    reason: Option<String>,
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn reset(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: ResetBody = api::body(req)?
        .ok_or_else(|| ApiError::InvalidRequest("request body: {\"reason\": \"…\"} is required".into()))?;
    let reason = body.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ApiError::InvalidRequest(format!("reason is required, 1 to {MAX_REASON} characters")));
    }
    let resources: Vec<(&str, ResourceKind)> = match &body.resource {
        Some(r) => {
            let def = deps.catalogue.resource(r).ok_or_else(|| ApiError::UnknownResource(r.clone()))?;
            vec![(r.as_str(), def.kind)]
        }
        None => deps
            .catalogue
            .resources
            .iter()
            .filter(|(_, d)| d.kind == ResourceKind::Period)
            .map(|(name, d)| (name.as_str(), d.kind))
            .collect(),
    };
    let named = format!("reset\n{}\n{reason}", body.resource.as_deref().unwrap_or("*"));
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::for_admin(k, &named))?;
    let now = deps.clock.now();
    let actor = call.subject();
    let (resets, expired) = api::bounded_admin(async {
        let mut done = Vec::new();
        let mut expired = Vec::new();
        for (resource, kind) in resources {
            let at = CounterRef { org: call.org(), resource, kind, catalogue: deps.catalogue };
            let (_, after, swept, replayed) = deps
                .store
                .replace_count(&at, idempotency.as_ref(), now, |before| {
                    let event = QuotaReset {
                        event_id: new_event_id(now),
                        org_id: call.org().clone(),
                        resource: resource.to_string(),
                        before: before.used,
                        actor: actor.to_string(),
                        reason: reason.to_string(),
                        period: before.period,
                        at: now,
                    };
                    // Back below a threshold it had reached: the "resolved" half.
                    let after = Counter { used: 0, ..before.clone() };
                    let recovered = QuotaRecovered::between(before, &after, RecoveryCause::Reset, now);
                    let events =
                        std::iter::once(Pending::of(&event)).chain(recovered.as_ref().map(Pending::of)).collect();
                    CountChange {
                        value: 0,
                        rearm: true,
                        entry: AuditEntry::reset(now, actor, resource, before.used, reason),
                        events,
                    }
                })
                .await?;
            expired.extend(swept);
            if !replayed {
                tracing::info!(resource, actor, "quota reset");
            }
            done.push((after, replayed));
        }
        Ok((done, expired))
    })
    .await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    delivery::flush_outbox(deps, call.org()).await;
    let replayed = !resets.is_empty() && resets.iter().all(|(_, replayed)| *replayed);
    let usages: Vec<_> = resets.iter().map(|(after, _)| after.at(now).usage(now)).collect();
    let response = api::ok(&serde_json::json!({ "orgId": call.org(), "reset": usages }));
    Ok(if replayed { api::replayed(response) } else { response })
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn add_grant(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: GrantBody = api::body(req)?.ok_or_else(|| {
        ApiError::InvalidRequest("request body: {\"resource\", \"amount\", \"reason\"} is required".into())
    })?;
    let now = deps.clock.now();
    let request = GrantRequest::parse(body, now).map_err(ApiError::InvalidRequest)?;
    let def = deps
        .catalogue
        .resource(&request.resource)
        .ok_or_else(|| ApiError::UnknownResource(request.resource.clone()))?;
    let actor = call.subject();
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::for_grant(k, &request))?;
    let (granted, expired) = api::bounded_admin(async {
        let store = &deps.store;
        let at = CounterRef { org: call.org(), resource: &request.resource, kind: def.kind, catalogue: deps.catalogue };
        Ok(store.add_grant(&at, &request, idempotency.as_ref(), actor, now).await?)
    })
    .await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    let answer = |details: &GrantDetails, counter: &Counter| {
        let body = serde_json::json!({
            "orgId": call.org(),
            "resource": request.resource,
            "grant": details,
            "usage": counter.usage(now),
        });
        api::json(StatusCode::CREATED, &body)
    };
    let (details, counter) = match granted {
        Granted::Added(details, counter) => (details, counter.at(now)),
        Granted::Replayed(details, counter) => {
            // The first request's answer was lost: its event may be too.
            delivery::flush_outbox(deps, call.org()).await;
            return Ok(api::replayed(answer(&details, &counter.at(now))));
        }
        Granted::TooMany => return Err(ApiError::TooManyGrants(MAX_GRANTS)),
        Granted::TooLarge => return Err(ApiError::limit_too_large()),
    };
    let grant = &details.grant;
    tracing::info!(resource = request.resource, grant = grant.id, amount = grant.amount, actor, "grant added");
    delivery::flush_outbox(deps, call.org()).await;
    Ok(answer(&details, &counter))
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn revoke_grant(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    if !req.body().is_empty() {
        return Err(ApiError::InvalidRequest("DELETE takes no body".into()));
    }
    let id = call.route.id.as_deref().filter(|id| Grant::valid_id(id)).ok_or(ApiError::GrantNotFound)?;
    let now = deps.clock.now();
    let actor = call.subject();
    let (revoked, expired) =
        api::bounded_admin(async { Ok(deps.store.revoke_grant(call.org(), id, actor, deps.catalogue, now).await?) })
            .await?;
    delivery::grants_expired(deps, call.org(), &expired, now).await;
    delivery::flush_outbox(deps, call.org()).await;
    let (details, counter, repeated) = match revoked {
        Revoked::Now(details, counter) => (details, counter, false),
        // A retry of a revoke that went through: its answer, again.
        Revoked::Before(details, counter) => (details, counter, true),
        Revoked::NotFound(_) => return Err(ApiError::GrantNotFound),
    };
    let counter = counter.at(now);
    if !repeated {
        tracing::info!(resource = counter.resource, grant = details.grant.id, actor, "grant revoked");
    }
    let response = api::ok(&serde_json::json!({
        "orgId": call.org(),
        "resource": counter.resource,
        "revoked": details,
        "usage": counter.usage(now),
    }));
    Ok(if repeated { api::replayed(response) } else { response })
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn audit(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let limit = match api::query(req, "limit") {
        None => 100,
        Some(text) => text.parse::<usize>().ok().filter(|l| (1..=MAX_AUDIT_ENTRIES).contains(l)).ok_or_else(|| {
            ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_AUDIT_ENTRIES}"))
        })?,
    };
    let entries = deps.store.audit(call.org(), limit).await?;
    if entries.is_empty() && deps.store.profile(call.org()).await?.is_none() {
        return Err(ApiError::OrgNotFound);
    }
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut v = serde_json::json!({
                "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "actor": e.actor,
                "action": e.action.as_str(),
            });
            for (name, value) in [
                ("resource", e.resource.clone().map(serde_json::Value::from)),
                ("before", e.before.clone()),
                ("after", e.after.clone()),
                ("reason", e.reason.clone().map(serde_json::Value::from)),
            ] {
                if let Some(value) = value {
                    v[name] = value;
                }
            }
            v
        })
        .collect();
    Ok(api::ok(&serde_json::json!({ "entries": entries })))
}

/// Most orgs one page of the list holds.
pub const MAX_ORGS_PAGE: usize = 100;
/// Orgs whose state is read at once for a page of the list.
const LIST_CONCURRENCY: usize = 8;

/// `GET /v1/admin/orgs`: a page of the `job` index (never the table's
/// history), each org's state read with one `Query`, the page ordered most
/// at risk first; `filter` keeps those at risk, blocked, or whose trial
/// ends within a week.
#[tracing::instrument(skip_all)]
async fn list_orgs(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    use futures::{StreamExt, TryStreamExt};
    use quota_shared::domain::report::{OrgFilter, OrgSummary, org_usage};
    use quota_shared::store::job::OrgCursor;
    let limit =
        match api::query(req, "limit") {
            None => 50,
            Some(text) => text.parse::<usize>().ok().filter(|l| (1..=MAX_ORGS_PAGE).contains(l)).ok_or_else(|| {
                ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_ORGS_PAGE}"))
            })?,
        };
    let filter = match api::query(req, "filter") {
        None => OrgFilter::All,
        Some(text) => OrgFilter::parse(&text).ok_or_else(|| {
            ApiError::InvalidRequest("filter must be one of all, at_risk, blocked, trial_ending".into())
        })?,
    };
    let cursor = api::query(req, "cursor")
        .map(|text| {
            OrgCursor::decode(&text).ok_or_else(|| ApiError::InvalidRequest("cursor is not one this API gave".into()))
        })
        .transpose()?;
    let now = deps.clock.now();
    let (orgs, next) = deps.store.list_orgs(limit, cursor).await?;
    let store = &deps.store;
    let reads = orgs.into_iter().map(|org| async move { store.org_state(&org).await });
    let states: Vec<_> = futures::stream::iter(reads).buffered(LIST_CONCURRENCY).try_collect().await?;
    let mut summaries: Vec<OrgSummary> = states
        .into_iter()
        .flatten()
        .map(|state| {
            OrgSummary::of(&org_usage(&state.profile, &state.counters_at(deps.catalogue, now), deps.catalogue, now))
        })
        .filter(|s| s.shown(filter, now))
        .collect();
    summaries.sort_by(OrgSummary::riskier);
    Ok(api::ok(&serde_json::json!({ "orgs": summaries, "nextCursor": next.map(|c| c.encode()) })))
}
