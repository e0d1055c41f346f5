//! The local API server: every HTTP function in-process, at the routes of
//! `template.yaml`, answering what API Gateway answers by itself where it
//! does, so local tests promise only what AWS delivers:
//!
//! - a route with the JWT authorizer and a missing or invalid token gets the
//!   authorizer's `401 {"message":"Unauthorized"}` (with `www-authenticate`),
//!   and a valid token with none of the route's scopes its
//!   `403 {"message":"Forbidden"}`;
//! - a request that matches no route (paths match exactly, as the gateway
//!   matches them) goes to the `$default` route's function, without auth,
//!   which answers the contract's 404 or 405.
//!
//! Otherwise a request becomes the API Gateway v2 event the real gateway
//! would send (claims from a verified HS256 token, as strings, under
//! `requestContext.authorizer.jwt.claims`), and goes to the function that
//! owns the route, through the same `handle` the Lambda runs.

pub mod jwt;
pub mod metrics;

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use base64::Engine;
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use quota_shared::Deps;
use quota_shared::api::{Function, Route};

/// The largest body API Gateway accepts; the functions enforce their own 64 KiB.
pub const MAX_GATEWAY_BODY: usize = 10 * 1024 * 1024;

/// The function behind the `$default` route: what no other route matches.
pub const DEFAULT_ROUTE_FUNCTION: Function = Function::GetUsage;

/// Routes a request to the function that owns it, as API Gateway does;
/// what no route matches goes to the `$default` route's function.
pub async fn dispatch(deps: &Deps, req: Request) -> Response<Body> {
    dispatch_with(|_| deps, req).await
}

/// [`dispatch`], each function with dependencies of its own (`deps_of`):
/// as in AWS, where each has its own role (the tests that hold each
/// function's calls to its policy sign each function's with a key of its
/// own).
pub async fn dispatch_with<'d>(deps_of: impl Fn(Function) -> &'d Deps, req: Request) -> Response<Body> {
    // The console's routes (`GET /console`, `GET /console/{proxy+}`, no
    // authorizer) go to its function; locally it signs in with a token in
    // its URL's fragment, so it has no OIDC settings.
    if console::serves(req.uri().path()) {
        return console::handle(&console::Config::local(), &req);
    }
    let function = match Route::parse(req.method(), req.uri().path()) {
        Ok(route) => route.endpoint.function(),
        Err(_) => DEFAULT_ROUTE_FUNCTION,
    };
    let deps = deps_of(function);
    match function {
        Function::CheckQuota => check_quota::handle(deps, req).await,
        Function::IncrementUsage => increment_usage::handle(deps, req).await,
        Function::GetUsage => get_usage::handle(deps, req).await,
        Function::ManageOrgs => manage_orgs::handle(deps, req).await,
        Function::ManageChannels => manage_channels::handle(deps, req).await,
        Function::AdminReset => admin_reset::handle(deps, req).await,
        Function::UsageJob => {
            let response = usage_job::handle(deps, req).await;
            if response.status() == 202 {
                continue_job(deps, &response);
            }
            response
        }
    }
}

/// What the stack's `DailyJobContinued` rule does in AWS: a run handed over
/// goes on, part by part, here in the background.
fn continue_job(deps: &Deps, response: &Response<Body>) {
    let summary: Option<usage_job::Summary> = serde_json::from_slice(response.body().as_ref()).ok();
    let Some(id) = summary.map(|s| s.run.id) else { return };
    let deps = deps.clone();
    tokio::spawn(async move {
        while let Ok(Some(part)) = usage_job::resume(&deps, &id, None, usage_job::Options::for_http()).await {
            // A hand-over that could not be recorded would be tried again
            // here at once, forever: Lambda's retries are bounded, so this is.
            if !part.run.continued || part.run.hand_over_failed {
                break;
            }
        }
    });
}

/// What `template.yaml` creates in AWS, created here when missing: the
/// table, the SES sender identity and the event bus (local runs and tests).
/// A failure is one line naming the service and where it was looked for.
pub async fn ensure_local_resources(deps: &Deps) -> anyhow::Result<()> {
    quota_shared::store::schema::ensure_table(deps.store.client(), deps.store.table()).await.map_err(|e| match e {
        quota_shared::store::StoreError::Unreachable { summary, .. }
        | quota_shared::store::StoreError::NoAnswer { summary, .. } => {
            anyhow::anyhow!("cannot reach DynamoDB at {}: {summary}", endpoint("DYNAMODB"))
        }
        other => {
            anyhow::anyhow!("creating table {:?} in DynamoDB at {}: {other}", deps.store.table(), endpoint("DYNAMODB"))
        }
    })?;
    let ses = anyhow::Context::context(deps.notifier.client(), "the local server has an email client")?;
    let identity = ses.create_email_identity().email_identity(deps.notifier.sender()).send().await;
    match identity {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_already_exists_exception()) => {}
        Err(e) => return Err(sdk_failure("SES v2", "SESV2", "creating the sender identity", &e)),
    }
    let eventbridge = anyhow::Context::context(deps.events.client(), "the local server has an EventBridge client")?;
    match eventbridge.create_event_bus().name(deps.events.bus()).send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => {}
        Err(e) => return Err(sdk_failure("EventBridge", "EVENTBRIDGE", "creating the event bus", &e)),
    }
    Ok(())
}

/// Where a service's requests go: its `AWS_ENDPOINT_URL_*` variable, the
/// general `AWS_ENDPOINT_URL`, or AWS itself.
fn endpoint(service: &str) -> String {
    let specific = format!("AWS_ENDPOINT_URL_{service}");
    match (std::env::var(&specific), std::env::var("AWS_ENDPOINT_URL")) {
        (Ok(url), _) => format!("{url} ({specific})"),
        (_, Ok(url)) => format!("{url} (AWS_ENDPOINT_URL)"),
        _ => "the AWS endpoint for the region".to_string(),
    }
}

fn sdk_failure<E, R>(name: &str, env: &str, doing: &str, err: &aws_sdk_sesv2::error::SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + aws_sdk_sesv2::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    match err.as_service_error() {
        Some(service) => anyhow::anyhow!(
            "{doing} in {name} at {}: {}: {}",
            endpoint(env),
            service.code().unwrap_or("error"),
            service.message().unwrap_or_default()
        ),
        None => anyhow::anyhow!("cannot reach {name} at {}: {}", endpoint(env), quota_shared::store::root_cause(err)),
    }
}

/// The API Gateway HTTP API (payload 2.0) event for a request.
pub fn apigw_event(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    claims: Option<&HashMap<String, String>>,
) -> serde_json::Value {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    // The gateway sets these itself (its own domain, https); a client's
    // values never reach the function. lambda_http builds the request's URL
    // from them, and would panic on one that is not a URL part.
    let gateway_set = ["host", "x-forwarded-proto", "x-forwarded-port"];
    for (name, value) in headers.iter().filter(|(name, _)| !gateway_set.contains(&name.as_str())) {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        joined
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(k.into_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    joined.insert("host".into(), "127.0.0.1".into());
    joined.insert("x-forwarded-proto".into(), "http".into());
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = chrono::Utc::now();
    // The route the gateway matched, as its event names it; a request no
    // route takes goes to `$default`.
    let (route_key, path_parameters) =
        quota_shared::api::route_key(method, path).unwrap_or_else(|| ("$default".to_string(), Vec::new()));
    let mut context = serde_json::json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "127.0.0.1",
        "domainPrefix": "local",
        "http": {
            "method": method.as_str(),
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": joined.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": format!("local-{}", now.timestamp_nanos_opt().unwrap_or_default()),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Some(claims) = claims {
        // The token's scopes, as the authorizer lists them.
        let scopes: Vec<&str> = claims
            .get("scope")
            .or_else(|| claims.get("scp"))
            .map(|s| s.trim_matches(|c| c == '[' || c == ']').split_whitespace().collect())
            .unwrap_or_default();
        let scopes = if scopes.is_empty() { serde_json::Value::Null } else { serde_json::json!(scopes) };
        context["authorizer"] = serde_json::json!({ "jwt": { "claims": claims, "scopes": scopes } });
    }
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !params.is_empty() {
        event["queryStringParameters"] = serde_json::json!(params);
    }
    if !path_parameters.is_empty() {
        let parameters: serde_json::Map<String, serde_json::Value> =
            path_parameters.into_iter().map(|(name, value)| (name, value.into())).collect();
        event["pathParameters"] = parameters.into();
    }
    if !body.is_empty() {
        event["body"] = serde_json::Value::String(body);
    }
    event
}

/// Turns an event into the request the Lambda runtime would hand the handler.
pub fn request_from_event(event: &serde_json::Value) -> Result<Request, quota_shared::ApiError> {
    lambda_http::request::from_str(&event.to_string())
        .map_err(|_| quota_shared::ApiError::InvalidRequest("the request could not be read".into()))
}

/// Server state.
#[derive(Clone)]
pub struct Local {
    pub deps: Deps,
    pub jwt_secret: String,
}

/// Serves the app on `listener` until `shutdown` resolves. Small JSON
/// requests and answers: Nagle's algorithm only adds latency, so it is off.
pub async fn serve(
    listener: tokio::net::TcpListener,
    local: Local,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app(local)).with_graceful_shutdown(shutdown).await
}

/// The axum app: every path goes through [`gateway`].
pub fn app(local: Local) -> axum::Router {
    axum::Router::new().fallback(gateway).with_state(local)
}

async fn gateway(
    axum::extract::State(local): axum::extract::State<Local>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_GATEWAY_BODY).await {
        Ok(b) => b,
        Err(_) => return into_axum(quota_shared::ApiError::PayloadTooLarge.into_response()),
    };
    // The JWT authorizer guards every route but health and `$default`, and
    // checks that the token has one of the route's scopes.
    let scope = Route::parse(&parts.method, parts.uri.path()).ok().and_then(|r| r.endpoint.scope());
    let claims = if let Some(scope) = scope {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim());
        let verified = match token {
            None | Some("") => Err(jwt::Refused("no token")),
            Some(token) => jwt::verify(&local.jwt_secret, token, chrono::Utc::now().timestamp()),
        };
        match verified {
            Ok(claims) if has_any_scope(&claims, scope.granted_by()) => Some(claims),
            Ok(_) => return forbidden(scope.granted_by()),
            Err(why) => return unauthorized(why),
        }
    } else {
        None
    };
    let event = apigw_event(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        &body,
        claims.as_ref(),
    );
    match request_from_event(&event) {
        Ok(request) => into_axum(dispatch(&local.deps, request).await),
        Err(err) => into_axum(err.into_response()),
    }
}

/// The JWT authorizer's own answer to a missing or invalid token.
fn unauthorized(why: jwt::Refused) -> axum::response::Response {
    let mut out = axum::response::Response::new(axum::body::Body::from(GATEWAY_UNAUTHORIZED));
    *out.status_mut() = StatusCode::UNAUTHORIZED;
    let challenge = format!(r#"Bearer scope="" error="invalid_token" error_description="{}""#, why.0);
    if let Ok(value) = challenge.parse() {
        out.headers_mut().insert("www-authenticate", value);
    }
    out.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    out
}

/// Whether the token's `scope` (or `scp`) claim holds one of `wanted`.
fn has_any_scope(claims: &HashMap<String, String>, wanted: &[&str]) -> bool {
    ["scope", "scp"]
        .iter()
        .filter_map(|name| claims.get(*name))
        .flat_map(|v| v.trim_matches(|c| c == '[' || c == ']').split_whitespace())
        .any(|s| wanted.contains(&s))
}

/// The JWT authorizer's answer to a valid token without any of the
/// route's scopes.
fn forbidden(wanted: &[&str]) -> axum::response::Response {
    let mut out = axum::response::Response::new(axum::body::Body::from(GATEWAY_FORBIDDEN));
    *out.status_mut() = StatusCode::FORBIDDEN;
    let challenge = format!(
        r#"Bearer scope="{}" error="insufficient_scope" error_description="the token has none of the route's scopes""#,
        wanted.join(" ")
    );
    if let Ok(value) = challenge.parse() {
        out.headers_mut().insert("www-authenticate", value);
    }
    out.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    out
}

/// API Gateway's body for a request whose token lacks the route's scopes.
pub const GATEWAY_FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;

/// API Gateway's body for a request its JWT authorizer refused.
pub const GATEWAY_UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;

fn into_axum(response: Response<Body>) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *out.headers_mut() = parts.headers;
    out
}
