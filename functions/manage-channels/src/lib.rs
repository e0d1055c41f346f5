//! `manage-channels`: an org's notification channels, managed by the
//! platform's admin or by the org itself (`quota:write` on a token bound to
//! it). Each change is audited.
//!
//! - `POST /v1/orgs/{orgId}/channels` `{"type", "url", "events"}`: adds one
//!   (201); a webhook's signing secret is in this answer only
//! - `GET /v1/orgs/{orgId}/channels`: the org's channels, oldest first
//! - `DELETE /v1/orgs/{orgId}/channels/{channelId}`: removes one
//! - `GET /v1/orgs/{orgId}/channels/{channelId}/deliveries?limit=n`: its
//!   recent deliveries, newest first, each with its attempts

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use quota_shared::api::{self, Call, Endpoint, Function};
use quota_shared::domain::channel::{Channel, ChannelBody, ChannelRequest, MAX_CHANNELS, Refused, Shown};
use quota_shared::domain::idempotency::IdempotencyKey;
use quota_shared::store::ChannelAdded;
use quota_shared::{ApiError, Deps};

/// Most deliveries one request returns.
pub const MAX_DELIVERIES: usize = 100;

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    api::serve(req, Function::ManageChannels, |call| async move {
        match call.route.endpoint {
            Endpoint::AddChannel => add(deps, &call, req).await,
            Endpoint::ListChannels => api::bounded(list(deps, &call)).await,
            Endpoint::RemoveChannel => remove(deps, &call, req).await,
            Endpoint::ChannelDeliveries => api::bounded(deliveries(deps, &call, req)).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

fn refused(r: Refused) -> ApiError {
    match r.code {
        "INVALID_REQUEST" => ApiError::InvalidRequest(r.message),
        code => ApiError::InvalidChannel { code, message: r.message },
    }
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn add(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: ChannelBody = api::body(req)?
        .ok_or_else(|| ApiError::InvalidRequest("request body: {\"type\", \"url\", \"events\"} is required".into()))?;
    let request = ChannelRequest::parse(body, deps.net.reach).map_err(refused)?;
    // Where the URL leads now, before anything is kept: a name that
    // resolves inside a network is refused here, and again at delivery.
    deps.net.check(&request.url).await.map_err(refused)?;
    // The key names the request and who made it: a retry answers its
    // creator (with the secret), and no one else.
    let named = format!("add-channel\n{}\n{}", call.subject(), String::from_utf8_lossy(req.body().as_ref()).trim());
    let idempotency = api::idempotency_key(req, |k| IdempotencyKey::for_admin(k, &named))?;
    let now = deps.clock.now();
    let Some(channel) = Channel::new(request, call.subject(), now) else {
        tracing::error!("no secure randomness for a signing secret: nothing kept");
        return Err(ApiError::StoreUnavailable);
    };
    let added = api::bounded_admin(async {
        Ok(deps.store.add_channel(call.org(), &channel, idempotency.as_ref(), now).await?)
    })
    .await?;
    match added {
        ChannelAdded::Added(channel) => {
            tracing::info!(channel = channel.id, kind = channel.kind.as_str(), actor = call.subject(), "channel added");
            Ok(api::json(StatusCode::CREATED, &channel.to_json(Shown::ToItsCreator)))
        }
        ChannelAdded::Replayed(channel) => {
            Ok(api::replayed(api::json(StatusCode::CREATED, &channel.to_json(Shown::ToItsCreator))))
        }
        ChannelAdded::TooMany => Err(ApiError::TooManyChannels(MAX_CHANNELS)),
        ChannelAdded::Gone => Err(ApiError::ChannelNotFound),
    }
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn list(deps: &Deps, call: &Call) -> Result<Response<Body>, ApiError> {
    let channels = deps.store.channels(call.org()).await?;
    if channels.is_empty() && deps.store.profile(call.org()).await?.is_none() {
        return Err(ApiError::OrgNotFound);
    }
    let shown: Vec<_> = channels.iter().map(|c| c.to_json(Shown::Masked)).collect();
    Ok(api::ok(&serde_json::json!({ "orgId": call.org(), "channels": shown })))
}

fn channel_id(call: &Call) -> Result<&str, ApiError> {
    call.route.id.as_deref().filter(|id| Channel::valid_id(id)).ok_or(ApiError::ChannelNotFound)
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn remove(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    if !req.body().is_empty() {
        return Err(ApiError::InvalidRequest("DELETE takes no body".into()));
    }
    let id = channel_id(call)?;
    let now = deps.clock.now();
    let removed =
        api::bounded_admin(async { Ok(deps.store.remove_channel(call.org(), id, call.subject(), now).await?) }).await?;
    let channel = removed.ok_or(ApiError::ChannelNotFound)?;
    tracing::info!(channel = channel.id, actor = call.subject(), "channel removed");
    Ok(api::ok(&serde_json::json!({ "orgId": call.org(), "removed": channel.to_json(Shown::Masked) })))
}

#[tracing::instrument(skip_all, fields(org = %call.org()))]
async fn deliveries(deps: &Deps, call: &Call, req: &Request) -> Result<Response<Body>, ApiError> {
    let limit =
        match api::query(req, "limit") {
            None => 20,
            Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=MAX_DELIVERIES).contains(n)).ok_or_else(|| {
                ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_DELIVERIES}"))
            })?,
        };
    let id = channel_id(call)?;
    if deps.store.channel(call.org(), id).await?.is_none() {
        return Err(ApiError::ChannelNotFound);
    }
    let found = deps.store.deliveries(call.org(), id, limit).await?;
    Ok(api::ok(&serde_json::json!({ "orgId": call.org(), "channelId": id, "deliveries": found })))
}
