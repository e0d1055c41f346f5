//! Test harness: each test gets its own DynamoDB table in the DynamoDB Local
//! that `scripts/test` started, and a pinned clock it can move. Requests go
//! through the same API Gateway v2 events and function handlers as in AWS.
//!
//! Without `AWS_ENDPOINT_URL_DYNAMODB` the tests fail loudly rather than
//! reach for a real AWS account: run them with `scripts/test`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Method};
use quota_local::metrics::{RequestLog, counted_client};
use quota_shared::bus::EventBus;
use quota_shared::domain::catalogue::Catalogue;
use quota_shared::email::Notifier;
use quota_shared::store::Store;
use quota_shared::{Clock, Deps};
pub use serde_json::{Value, json};

pub mod aws;
pub mod proxy;
pub mod receiver;

pub use proxy::{Call, Fault, FaultProxy, Rule};

/// Polls `check` until it gives `Some`, for as long as a loaded machine may
/// need (two minutes): waits for a state, never for a time. Panics naming
/// `what` when the state never comes.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Who a request claims to be.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No authorizer claims at all.
    None,
    /// `sub`, `scope` and optionally `org_id`.
    Token { sub: &'static str, scope: &'static str, org: Option<&'static str> },
}

pub const ADMIN: Auth = Auth::Token { sub: "admin@ops", scope: "quota:admin", org: None };
pub const APP: Auth = Auth::Token { sub: "app", scope: "quota:read quota:write", org: None };

impl Auth {
    pub fn claims(&self) -> Option<HashMap<String, String>> {
        match self {
            Auth::None => None,
            Auth::Token { sub, scope, org } => {
                let mut claims =
                    HashMap::from([("sub".to_string(), sub.to_string()), ("scope".to_string(), scope.to_string())]);
                if let Some(org) = org {
                    claims.insert("org_id".to_string(), org.to_string());
                }
                Some(claims)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The stable error code, if the body is an error.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn used(&self) -> i64 {
        self.body["usage"]["used"].as_i64().unwrap_or_else(|| panic!("no usage.used in {}", self.body))
    }
}

pub struct TestApp {
    /// What the handlers use: through the fault proxies in a
    /// [`TestApp::with_faults`] app, straight to the stand-ins otherwise.
    pub deps: Deps,
    /// Always straight to the stand-ins: for looking at the state while
    /// faults are injected.
    pub direct: Deps,
    pub clock: Clock,
    pub requests: RequestLog,
    /// Unique to this test in the whole run: for org ids and email domains
    /// that must not meet another test's in the shared SES server.
    pub id: String,
    faults: Option<Faults>,
    /// In an [`TestApp::attributed`] app: each function's own dependencies,
    /// its AWS calls signed with an access key of its own.
    by_function: Option<std::collections::BTreeMap<&'static str, Deps>>,
}

/// The fault-injecting proxies of a [`TestApp::with_faults`] app.
pub struct Faults {
    /// In front of DynamoDB Local.
    pub dynamodb: FaultProxy,
    /// In front of moto (SES v2 and EventBridge).
    pub aws: FaultProxy,
}

/// An email as the local SES server recorded it (it keeps the HTML part).
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
}

static TABLES: AtomicU32 = AtomicU32::new(0);

pub const SENDER: &str = "quota@quota-tests.example";
pub const BUS: &str = "quota-tests";
pub const DASHBOARD: &str = "https://app.example.com/usage";

/// The AWS config tests use: the local endpoints from the environment.
pub async fn aws_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run the tests with scripts/test, which starts DynamoDB Local"
    );
    quota_shared::clients::local_config().await
}

fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test"))
}

/// The service's dependencies with the production client configuration
/// (`quota_shared::clients`), sending DynamoDB requests to `dynamodb` and
/// SES/EventBridge requests to `aws` when given.
fn deps_for(
    aws: &aws_config::SdkConfig,
    table: &str,
    clock: &Clock,
    requests: &RequestLog,
    dynamodb: Option<&str>,
    other: Option<&str>,
) -> Deps {
    use quota_shared::clients;
    let ses = match other {
        Some(url) => clients::sesv2(aws).endpoint_url(url),
        None => clients::sesv2(aws),
    };
    let eventbridge = match other {
        Some(url) => clients::eventbridge(aws).endpoint_url(url),
        None => clients::eventbridge(aws),
    };
    Deps {
        store: Store::new(counted_client(aws, requests, dynamodb), table),
        clock: clock.clone(),
        catalogue: Catalogue::builtin(),
        notifier: Notifier::new(aws_sdk_sesv2::Client::from_conf(ses.build()), SENDER, DASHBOARD),
        events: EventBus::new(aws_sdk_eventbridge::Client::from_conf(eventbridge.build()), BUS).recording(),
        net: quota_shared::outbound::Net::tests(test_hosts()),
    }
}

/// The only names the tests' channels resolve, from a fixed table (no DNS
/// server is ever asked), and the addresses they stand for. Deliveries in
/// the tests connect to loopback only, whatever a name says.
pub fn test_hosts() -> quota_shared::outbound::http::StaticResolver {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("an address");
    let table = [
        (HOOKS_HOST, vec![ip("93.184.215.14")]),
        ("intranet.quota-tests.example", vec![ip("10.0.0.8")]),
        ("metadata.quota-tests.example", vec![ip("169.254.169.254")]),
        ("mixed.quota-tests.example", vec![ip("93.184.215.14"), ip("192.168.1.9")]),
        (RECEIVER_HOST, vec![ip("127.0.0.1")]),
    ];
    quota_shared::outbound::http::StaticResolver(table.into_iter().map(|(h, ips)| (h.to_string(), ips)).collect())
}

/// A public name, in the tests' table: a channel may point at it (and no
/// delivery in a test ever reaches it).
pub const HOOKS_HOST: &str = "hooks.quota-tests.example";
/// A name for this machine, in the tests' table.
pub const RECEIVER_HOST: &str = "receiver.quota-tests.example";

impl TestApp {
    /// A fresh table and a clock pinned at `now` (RFC 3339).
    pub async fn new(now: &str) -> TestApp {
        TestApp::build(now, false).await
    }

    /// As [`TestApp::new`], with the handlers' DynamoDB, SES and EventBridge
    /// requests going through fault-injecting proxies ([`TestApp::faults`]).
    pub async fn with_faults(now: &str) -> TestApp {
        TestApp::build(now, true).await
    }

    async fn build(now: &str, faulty: bool) -> TestApp {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_test_writer()
            .try_init();
        let aws = aws_config().await;
        let requests = RequestLog::default();
        let table: String = format!(
            "test-{}-{}-{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_micros()
        );
        let clock = Clock::fixed(now.parse().expect("RFC 3339 instant"));
        let direct = deps_for(&aws, &table, &clock, &RequestLog::default(), None, None);
        let (deps, faults) = if faulty {
            let faults = Faults {
                dynamodb: FaultProxy::start(&env_url("AWS_ENDPOINT_URL_DYNAMODB")).await,
                aws: FaultProxy::start(&env_url("MOTO_URL")).await,
            };
            let deps = deps_for(&aws, &table, &clock, &requests, Some(&faults.dynamodb.url()), Some(&faults.aws.url()));
            (deps, Some(faults))
        } else {
            (deps_for(&aws, &table, &clock, &requests, None, None), None)
        };
        quota_local::ensure_local_resources(&direct).await.expect("create the table, SES identity and bus");
        requests.take();
        let id = table.trim_start_matches("test-").to_string();
        TestApp { deps, direct, clock, requests, id, faults, by_function: None }
    }

    /// As [`TestApp::with_faults`], with each function's AWS calls signed
    /// with an access key of its own ([`access_key`]), as each function's
    /// role signs them in AWS: the proxies record who called what
    /// ([`FaultProxy::calls`]). `deps` is the daily job's.
    pub async fn attributed(now: &str) -> TestApp {
        use quota_shared::api::Function;
        let mut app = TestApp::build(now, true).await;
        let aws = aws_config().await;
        let (dynamodb, other) = {
            let faults = app.faults();
            (faults.dynamodb.url(), faults.aws.url())
        };
        let mut by_function = std::collections::BTreeMap::new();
        for function in Function::ALL {
            let creds = aws_sdk_dynamodb::config::Credentials::new(access_key(function), "local", None, None, "test");
            let signed = aws
                .to_builder()
                .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(creds))
                .build();
            let deps =
                deps_for(&signed, app.deps.store.table(), &app.clock, &app.requests, Some(&dynamodb), Some(&other));
            by_function.insert(function.name(), deps);
        }
        app.deps = by_function[Function::UsageJob.name()].clone();
        app.by_function = Some(by_function);
        app
    }

    /// The AWS configuration of the function `binary` in an
    /// [`TestApp::attributed`] app (its calls signed with its own key), and
    /// its dependencies, through the proxies.
    pub async fn signed_as(&self, binary: &str) -> (aws_config::SdkConfig, Deps) {
        let aws = aws_config().await;
        let creds = aws_sdk_dynamodb::config::Credentials::new(access_key_of(binary), "local", None, None, "test");
        let signed =
            aws.to_builder().credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(creds)).build();
        let (dynamodb, other) = (self.faults().dynamodb.url(), self.faults().aws.url());
        let deps =
            deps_for(&signed, self.deps.store.table(), &self.clock, &self.requests, Some(&dynamodb), Some(&other));
        (signed, deps)
    }

    /// The proxies of a [`TestApp::with_faults`] app.
    pub fn faults(&self) -> &Faults {
        self.faults.as_ref().expect("a TestApp::with_faults app")
    }

    /// `base` made unique to this test, e.g. `free` → `free-4711-3-…`.
    pub fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    /// Contacts whose addresses live at this test's own domain.
    pub fn contacts(&self, org: &str) -> Value {
        let d = self.domain(org);
        json!({ "owner": format!("owner@{d}"), "billing": format!("billing@{d}"),
                "admins": [format!("admin@{d}"), format!("OWNER@{d}")] })
    }

    pub fn domain(&self, org: &str) -> String {
        format!("{org}.test")
    }

    /// Every email the local SES server has accepted for `org`'s domain.
    pub async fn emails(&self, org: &str) -> Vec<SentEmail> {
        let suffix = format!("@{}", self.domain(org));
        let data = moto_data().await;
        data["ses"]["Message"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|m| {
                        let to: Vec<String> = m["destinations"]["ToAddresses"]
                            .as_array()?
                            .iter()
                            .filter_map(|a| a.as_str().map(str::to_string))
                            .collect();
                        to.iter().any(|a| a.to_ascii_lowercase().ends_with(&suffix)).then(|| SentEmail {
                            to,
                            subject: m["subject"].as_str().unwrap_or_default().to_string(),
                            html: m["body"].as_str().unwrap_or_default().to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events the bus accepted for `org`, as `(detail-type, detail)`.
    pub fn events(&self, org: &str) -> Vec<(String, Value)> {
        self.deps
            .events
            .published()
            .into_iter()
            .filter(|(_, d)| d["orgId"] == org)
            .map(|(k, d)| (k.detail_type().to_string(), d))
            .collect()
    }

    /// Delivers what the bus accepts to the orgs' channels, in-process, as
    /// `quota-local` does (`outbound::local`), waiting `scale` times the
    /// deployed schedule between attempts.
    pub fn deliver_to_channels(&mut self, scale: f64) {
        use quota_shared::outbound::{Sender, local};
        let sender = Sender::new(self.deps.net.clone());
        let worker = local::start(self.deps.store.clone(), sender, DASHBOARD.into(), local::Backoff { scale });
        self.deps.events = self.deps.events.clone().tapped(move |event| worker.event(event));
    }

    /// Runs the daily job through `POST /v1/admin/jobs/daily`.
    pub async fn run_job(&self) -> Value {
        let reply = self.post("/v1/admin/jobs/daily", json!({}), &ADMIN).await;
        assert_eq!(reply.status, 200, "job: {}", reply.body);
        reply.body
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn set_now(&self, at: &str) {
        self.clock.set(at.parse().expect("RFC 3339 instant"));
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Sends a request through the API Gateway event and the owning function.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        auth: &Auth,
    ) -> Reply {
        self.send_via(&self.deps, method, path_and_query, body, headers, auth).await
    }

    /// [`TestApp::send`] with other dependencies (say, [`TestApp::ses_down`]).
    pub async fn send_via(
        &self,
        deps: &Deps,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        auth: &Auth,
    ) -> Reply {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in headers {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let event =
            quota_local::apigw_event(&method, path, query, &map, body.unwrap_or("").as_bytes(), auth.claims().as_ref());
        let request = quota_local::request_from_event(&event).expect("the event parses");
        let response = match &self.by_function {
            Some(each) if std::ptr::eq(deps, &self.deps) => {
                quota_local::dispatch_with(|f| &each[f.name()], request).await
            }
            _ => quota_local::dispatch(deps, request).await,
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes: &[u8] = response.body().as_ref();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("non-JSON body ({e}): {bytes:?}"))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Reply {
        self.send(Method::GET, path, None, &[], auth).await
    }

    pub async fn post(&self, path: &str, body: Value, auth: &Auth) -> Reply {
        self.send(Method::POST, path, Some(&body.to_string()), &[], auth).await
    }

    pub async fn put(&self, path: &str, body: Value, auth: &Auth) -> Reply {
        self.send(Method::PUT, path, Some(&body.to_string()), &[], auth).await
    }

    /// Creates or updates an org as an admin; panics unless 200/201.
    pub async fn org(&self, org: &str, body: Value) -> Reply {
        let reply = self.put(&format!("/v1/orgs/{org}"), body, &ADMIN).await;
        assert!(matches!(reply.status, 200 | 201), "PUT org: {} {}", reply.status, reply.body);
        reply
    }

    pub async fn consume(&self, org: &str, resource: &str, amount: i64) -> Reply {
        self.post(&format!("/v1/orgs/{org}/usage/{resource}/consume"), json!({ "amount": amount }), &APP).await
    }

    /// This test's dependencies with SES unreachable (nothing listens on
    /// port 9 of loopback): every send fails as it would with SES down.
    pub async fn ses_down(&self) -> Deps {
        let aws = aws_config().await;
        let down = quota_shared::clients::sesv2(&aws).endpoint_url("http://127.0.0.1:9").build();
        let working = &self.deps.notifier;
        let notifier = Notifier::new(aws_sdk_sesv2::Client::from_conf(down), working.sender(), working.dashboard_url());
        Deps { notifier, ..self.deps.clone() }
    }

    pub async fn consume_with_key(&self, org: &str, resource: &str, amount: i64, key: &str) -> Reply {
        let body = json!({ "amount": amount }).to_string();
        let path = format!("/v1/orgs/{org}/usage/{resource}/consume");
        self.send(Method::POST, &path, Some(&body), &[("idempotency-key", key)], &APP).await
    }

    pub async fn release(&self, org: &str, resource: &str, amount: i64) -> Reply {
        self.post(&format!("/v1/orgs/{org}/usage/{resource}/release"), json!({ "amount": amount }), &APP).await
    }

    /// `POST …/reserve` with `body` (`{"amount": n, "ttlSeconds"?: s}`).
    pub async fn reserve(&self, org: &str, resource: &str, body: Value) -> Reply {
        self.post(&format!("/v1/orgs/{org}/usage/{resource}/reserve"), body, &APP).await
    }

    /// Reserves `amount`; panics unless 201. Returns the reservation id.
    pub async fn reserved(&self, org: &str, resource: &str, amount: i64) -> String {
        let reply = self.reserve(org, resource, json!({ "amount": amount })).await;
        assert_eq!(reply.status, 201, "reserve: {}", reply.body);
        reply.body["reservationId"].as_str().expect("reservationId").to_string()
    }

    /// `POST …/reservations/{id}/commit`, with `{"amount": actual}` when given.
    pub async fn commit(&self, org: &str, id: &str, actual: Option<i64>) -> Reply {
        let body = actual.map_or(json!({}), |a| json!({ "amount": a }));
        self.post(&format!("/v1/orgs/{org}/reservations/{id}/commit"), body, &APP).await
    }

    /// `DELETE …/reservations/{id}`.
    pub async fn cancel(&self, org: &str, id: &str) -> Reply {
        self.send(Method::DELETE, &format!("/v1/orgs/{org}/reservations/{id}"), None, &[], &APP).await
    }

    /// `POST /v1/admin/orgs/{org}/grants` as an admin.
    pub async fn grant(&self, org: &str, body: Value) -> Reply {
        self.post(&format!("/v1/admin/orgs/{org}/grants"), body, &ADMIN).await
    }

    /// `DELETE /v1/admin/orgs/{org}/grants/{id}` as an admin.
    pub async fn revoke(&self, org: &str, id: &str) -> Reply {
        self.send(Method::DELETE, &format!("/v1/admin/orgs/{org}/grants/{id}"), None, &[], &ADMIN).await
    }

    /// A counter's item as the table holds it, attribute by attribute.
    pub async fn counter_item(
        &self,
        org: &str,
        resource: &str,
    ) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = self
            .direct
            .store
            .client()
            .get_item()
            .table_name(self.direct.store.table())
            .key("pk", AttributeValue::S(format!("ORG#{org}")))
            .key("sk", AttributeValue::S(format!("STATE#USAGE#{resource}")))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem");
        out.item().cloned().expect("the counter's item")
    }

    /// A counter as stored (expired holds and grants included until taken off).
    pub async fn stored_counter(&self, org: &str, resource: &str) -> quota_shared::domain::usage::Counter {
        let org = quota_shared::domain::org::OrgId::parse(org).expect("org id");
        let kind = self.deps.catalogue.resource(resource).expect("resource").kind;
        self.direct.store.counter(&org, resource, kind, self.deps.catalogue, self.now()).await.expect("counter")
    }

    pub async fn usage(&self, org: &str) -> Reply {
        let reply = self.get(&format!("/v1/orgs/{org}/usage"), &APP).await;
        assert_eq!(reply.status, 200, "usage: {}", reply.body);
        reply
    }

    /// The `Usage` of one resource from the org usage read.
    pub async fn resource_usage(&self, org: &str, resource: &str) -> Value {
        let all = self.usage(org).await;
        all.body["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|u| u["resource"] == resource))
            .cloned()
            .unwrap_or_else(|| panic!("{resource} missing from {}", all.body))
    }
}

/// The access key a function's calls are signed with in an
/// [`TestApp::attributed`] app.
pub fn access_key(function: quota_shared::api::Function) -> String {
    access_key_of(function.name())
}

/// [`access_key`] for any function by its binary's name (one that serves
/// no route too, such as `deliver-channels`).
pub fn access_key_of(binary: &str) -> String {
    format!("AKIATEST{}", binary.to_uppercase().replace('-', ""))
}

/// The local SES/EventBridge server's state (`/moto-api/data.json`).
pub async fn moto_data() -> Value {
    use http_body_util::BodyExt;
    let base = std::env::var("MOTO_URL").expect("MOTO_URL is not set: run the tests with scripts/test");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = format!("{base}/moto-api/data.json").parse().expect("moto URL");
    let response = client.get(uri).await.expect("moto answers");
    let body = response.into_body().collect().await.expect("moto body").to_bytes();
    serde_json::from_slice(&body).expect("moto data is JSON")
}

/// `quota-local`'s HTTP server on a free loopback port, serving a test's
/// dependencies: for what API Gateway itself answers (tokens, routes).
pub struct LocalServer {
    pub base: String,
    pub secret: String,
}

impl TestApp {
    /// Serves this app's dependencies through `quota-local` until the test ends.
    pub async fn serve_local(&self) -> LocalServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let secret = format!("secret-{}", self.id);
        let local = quota_local::Local { deps: self.deps.clone(), jwt_secret: secret.clone() };
        tokio::spawn(quota_local::serve(listener, local, std::future::pending()));
        LocalServer { base, secret }
    }
}

impl LocalServer {
    /// A token signed with this server's secret, with exactly these claims.
    pub fn token(&self, claims: Value) -> String {
        quota_local::jwt::mint(&self.secret, &claims)
    }

    /// A valid token: `sub`, `scope`, an hour of `exp`, and `extra` claims.
    pub fn token_for(&self, scope: &str, extra: Value) -> String {
        let mut claims = json!({ "sub": "http-client", "scope": scope, "exp": Utc::now().timestamp() + 3600 });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        self.token(claims)
    }

    /// Sends a request over HTTP; the body is parsed as JSON when there is one.
    pub async fn send(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Reply {
        self.send_with(method, path, body, token, &[]).await
    }

    /// [`LocalServer::send`] with extra headers.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        use http_body_util::BodyExt;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut req = hyper::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or("").to_string()));
        let response = client.request(req.body(body).expect("request")).await.expect("quota-local answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
        Reply { status, headers, body }
    }
}
