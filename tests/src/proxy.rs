//! A fault-injecting HTTP proxy, placed between the service's AWS clients and
//! a local stand-in (DynamoDB Local, moto). By rule it lets requests through,
//! or loses the response after the upstream answered (the write committed,
//! the caller never hears), stalls (accepts and never answers), answers with
//! DynamoDB's own error bodies without forwarding, or delays; and it can
//! refuse connections altogether. Everything it injects is counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// What to do to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward it, wait for the upstream's whole answer, then close the
    /// connection without replying.
    LoseResponse,
    /// Never answer (until the rules are cleared; then close).
    Stall,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward at once, then hold the answer back this long: the upstream
    /// has done the work, the caller does not know yet.
    DelayResponse(Duration),
    /// DynamoDB's `TransactionConflictException` (400), not forwarded.
    TransactionConflict,
    /// DynamoDB's `ThrottlingException` (400), not forwarded.
    Throttling,
    /// DynamoDB's `ProvisionedThroughputExceededException` (400), not forwarded.
    ProvisionedThroughputExceeded,
    /// HTTP 500 `InternalServerError`, not forwarded.
    InternalError,
    /// `TransactionCanceledException` whose first item's reason is
    /// `TransactionConflict` (the others `None`), not forwarded.
    TransactionCanceledByConflict,
    /// An SES v2 error, not forwarded: its HTTP status, its error type (the
    /// `x-amzn-ErrorType` header, as SES v2 sends it) and message.
    SesError(u16, &'static str, &'static str),
    /// Forward with the request's `Limit` at most this: the page boundaries
    /// of real DynamoDB, which stops a Query or Scan page at 1 MB read
    /// before it filters. DynamoDB Local does not (a filtered read comes
    /// back whole), so without this a reader that stops after one page
    /// passes every test.
    SmallPages(u32),
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::LoseResponse => "LoseResponse",
            Fault::Stall => "Stall",
            Fault::Delay(_) => "Delay",
            Fault::DelayResponse(_) => "DelayResponse",
            Fault::TransactionConflict => "TransactionConflict",
            Fault::Throttling => "Throttling",
            Fault::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            Fault::InternalError => "InternalError",
            Fault::TransactionCanceledByConflict => "TransactionCanceledByConflict",
            Fault::SmallPages(_) => "SmallPages",
            Fault::SesError(_, kind, _) => kind,
        }
    }

    /// The status and DynamoDB error body this fault answers with, if it does.
    fn dynamodb_error(self) -> Option<(u16, &'static str, &'static str)> {
        match self {
            Fault::TransactionConflict => {
                Some((400, "TransactionConflictException", "Transaction is ongoing for the item"))
            }
            Fault::Throttling => Some((400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")),
            Fault::ProvisionedThroughputExceeded => Some((
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )),
            Fault::InternalError => Some((500, "InternalServerError", "Internal server error")),
            _ => None,
        }
    }
}

/// When a fault applies: to which operation, how often, how many times.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The operation (`UpdateItem`, `TransactWriteItems`, `PutEvents`, …) or
    /// a path fragment (`/outbound-emails`); `None` for every request.
    operation: Option<String>,
    fault: Fault,
    /// Chance in 0..=1 that a matching request gets the fault.
    rate: f64,
    /// How many more times; `None` for no end.
    remaining: Option<usize>,
    /// Only every `every`-th matching request, starting with the first.
    every: usize,
    /// Matching requests to let through before the rule starts.
    skip: usize,
    seen: usize,
}

impl Rule {
    /// Every request.
    pub fn all(fault: Fault) -> Rule {
        Rule { operation: None, fault, rate: 1.0, remaining: None, every: 1, skip: 0, seen: 0 }
    }

    /// Requests for one operation (or whose path contains `operation`).
    pub fn on(operation: &str, fault: Fault) -> Rule {
        Rule { operation: Some(operation.to_string()), fault, rate: 1.0, remaining: None, every: 1, skip: 0, seen: 0 }
    }

    /// Only this share of matching requests.
    pub fn rate(mut self, rate: f64) -> Rule {
        self.rate = rate;
        self
    }

    /// Only every `n`-th matching request (the 1st, the n+1-th, …).
    pub fn every(mut self, n: usize) -> Rule {
        self.every = n.max(1);
        self
    }

    /// Lets the first `n` matching requests through untouched.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.remaining = Some(n);
        self
    }
}

struct Inner {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    /// A small deterministic generator (xorshift), for rates.
    seed: Mutex<u64>,
    injected: Mutex<BTreeMap<&'static str, usize>>,
    forwarded: Mutex<BTreeMap<String, usize>>,
    /// Bodies of the requests the upstream accepted (2xx), by operation.
    accepted: Mutex<Vec<(String, Bytes)>>,
    /// Every request's IAM actions, by the access key that signed it.
    calls: Mutex<Vec<Call>>,
    /// The `ClientRequestToken`s of transactions forwarded to DynamoDB: a
    /// repeat of one is DynamoDB's to answer (success, if the first was
    /// applied), never a made-up cancellation.
    tokens: Mutex<std::collections::HashSet<String>>,
    /// Wakes stalled requests when the rules are cleared.
    unstall: Notify,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Inner {
    /// The fault for this request, if any. A transaction resent under a
    /// token already forwarded gets no cancellation: DynamoDB answers a
    /// repeat of an applied token with success (idempotent), so a made-up
    /// conflict there would model a DynamoDB that does not exist.
    fn decide(&self, operation: &str, repeated_token: bool) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for rule in rules.iter_mut() {
            let matches = rule.operation.as_deref().is_none_or(|op| op == operation || operation.contains(op));
            if !matches || rule.remaining == Some(0) {
                continue;
            }
            if repeated_token && rule.fault == Fault::TransactionCanceledByConflict {
                continue;
            }
            rule.seen += 1;
            if rule.seen <= rule.skip || (rule.seen - rule.skip - 1) % rule.every != 0 {
                continue;
            }
            if rule.rate < 1.0 && self.next_unit() >= rule.rate {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            *self.injected.lock().unwrap().entry(rule.fault.name()).or_default() += 1;
            return Some(rule.fault);
        }
        None
    }

    fn next_unit(&self) -> f64 {
        let mut x = self.seed.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The proxy. Dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    tasks: Mutex<JoinSet<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Mutex::new(Vec::new()),
            seed: Mutex::new(0x9E37_79B9_7F4A_7C15 ^ u64::from(addr.port())),
            injected: Mutex::new(BTreeMap::new()),
            forwarded: Mutex::new(BTreeMap::new()),
            accepted: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            tokens: Mutex::new(std::collections::HashSet::new()),
            unstall: Notify::new(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let proxy = FaultProxy { addr, inner, tasks: Mutex::new(JoinSet::new()) };
        proxy.listen(listener);
        proxy
    }

    /// The endpoint to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule; the first matching rule decides.
    pub fn inject(&self, rule: Rule) {
        self.inner.rules.lock().unwrap().push(rule);
    }

    /// Removes every rule; stalled requests are closed, unanswered.
    pub fn clear(&self) {
        self.inner.rules.lock().unwrap().clear();
        self.inner.unstall.notify_waiters();
    }

    /// Stops listening and drops every open connection: connects are refused.
    pub fn refuse(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Listens again, on the same port.
    pub async fn restore(&self) {
        let mut delay = Duration::from_millis(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if delay < Duration::from_secs(2) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => panic!("re-binding the proxy on {}: {e}", self.addr),
            }
        };
        self.listen(listener);
    }

    /// How many times each fault was injected.
    pub fn injected(&self) -> BTreeMap<&'static str, usize> {
        self.inner.injected.lock().unwrap().clone()
    }

    /// How many requests of each operation reached the upstream.
    pub fn forwarded(&self) -> BTreeMap<String, usize> {
        self.inner.forwarded.lock().unwrap().clone()
    }

    /// Every request's IAM actions so far, each with the access key that
    /// signed it (SigV4's `Credential=`), in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The bodies of every request for `operation` that the upstream
    /// accepted, whether or not its answer reached the caller.
    pub fn accepted(&self, operation: &str) -> Vec<Bytes> {
        let accepted = self.inner.accepted.lock().unwrap();
        accepted.iter().filter(|(op, _)| op == operation || op.contains(operation)).map(|(_, b)| b.clone()).collect()
    }

    fn listen(&self, listener: TcpListener) {
        let inner = Arc::clone(&self.inner);
        let mut tasks = self.tasks.lock().unwrap();
        // Connections are spawned into the same set, so `refuse` drops them too.
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<tokio::net::TcpStream>();
        tasks.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                if conn_tx.send(stream).is_err() {
                    return;
                }
            }
        });
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Some(stream) = conn_rx.recv().await {
                let inner = Arc::clone(&inner);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&inner), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
    }
}

/// One IAM action a request asked for: who signed it (its access key), the
/// action (`dynamodb:UpdateItem`; each item of a `TransactWriteItems` is
/// its own), on what (`table`, `index/<name>`, `bus`, `ses`), and for
/// `PutEvents` the entry's `source` (the policy's condition key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub access_key: String,
    pub action: String,
    pub resource: String,
    pub source: Option<String>,
}

/// The IAM actions a request asks for, as AWS authorizes it.
fn calls_of(headers: &hyper::HeaderMap, path: &str, operation: &str, body: &[u8]) -> Vec<Call> {
    let access_key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("unsigned")
        .to_string();
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let call = |action: String, resource: &str, source: Option<String>| Call {
        access_key: access_key.clone(),
        action,
        resource: resource.to_string(),
        source,
    };
    if path.contains("/outbound-emails") {
        return vec![call("ses:SendEmail".into(), "ses", None)];
    }
    if operation == "PutEvents" {
        let entries = json["Entries"].as_array().cloned().unwrap_or_default();
        return entries
            .iter()
            .map(|e| call("events:PutEvents".into(), "bus", e["Source"].as_str().map(str::to_string)))
            .collect();
    }
    if operation == "TransactWriteItems" {
        let items = json["TransactItems"].as_array().cloned().unwrap_or_default();
        let mut out = vec![call("dynamodb:TransactWriteItems".into(), "table", None)];
        for item in items {
            for (kind, action) in [
                ("Put", "PutItem"),
                ("Update", "UpdateItem"),
                ("Delete", "DeleteItem"),
                ("ConditionCheck", "ConditionCheckItem"),
            ] {
                if item.get(kind).is_some() {
                    out.push(call(format!("dynamodb:{action}"), "table", None));
                }
            }
        }
        return out;
    }
    if operation.starts_with('/') {
        return Vec::new(); // moto's own API (data, reset)
    }
    let target = headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or_default();
    if target.starts_with("AmazonSQS") {
        // The channel queue, or its dead-letter queue (its name says so).
        let queue = json["QueueUrl"].as_str().unwrap_or_default();
        let resource = if queue.contains("dead") { "channel-dlq" } else { "channel-queue" };
        return vec![call(format!("sqs:{operation}"), resource, None)];
    }
    let service = if target.starts_with("AWSEvents") { "events" } else { "dynamodb" };
    let resource = match json["IndexName"].as_str() {
        Some(index) => format!("index/{index}"),
        None => "table".to_string(),
    };
    vec![call(format!("{service}:{operation}"), &resource, None)]
}

/// The error a service returns to make hyper drop the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

fn operation_of(req: &Request<Incoming>) -> String {
    match req.headers().get("x-amz-target").and_then(|t| t.to_str().ok()) {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_string(),
        None => req.uri().path().to_string(),
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let operation = operation_of(&req);
    let (mut parts, body) = req.into_parts();
    let mut body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let token = (operation == "TransactWriteItems")
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|r| r["ClientRequestToken"].as_str().map(str::to_string));
    let repeated = token.as_ref().is_some_and(|t| inner.tokens.lock().unwrap().contains(t));
    let fault = inner.decide(&operation, repeated);
    let calls = calls_of(&parts.headers, parts.uri.path(), &operation, &body);
    inner.calls.lock().unwrap().extend(calls);
    match fault {
        Some(Fault::Stall) => {
            inner.unstall.notified().await;
            return Err(Dropped);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::SmallPages(page)) => {
            let mut request: serde_json::Value = serde_json::from_slice(&body).map_err(|_| Dropped)?;
            let limit = request["Limit"].as_u64().map_or(page.into(), |l| l.min(page.into()));
            request["Limit"] = limit.into();
            body = Bytes::from(request.to_string());
            parts.headers.insert(hyper::header::CONTENT_LENGTH, body.len().into());
        }
        Some(Fault::TransactionCanceledByConflict) => {
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let items = request["TransactItems"].as_array().map_or(1, Vec::len);
            let reasons: Vec<serde_json::Value> = (0..items)
                .map(|i| match i {
                    0 => serde_json::json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" }),
                    _ => serde_json::json!({ "Code": "None" }),
                })
                .collect();
            let body = serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
                "CancellationReasons": reasons,
            });
            return Ok(Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.0")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("static response"));
        }
        Some(Fault::SesError(status, kind, message)) => {
            // SES v2 is a REST-JSON service: the error's type is in a header
            // (with the service's namespace after a colon), its message in
            // the body.
            let body = serde_json::json!({ "message": message }).to_string();
            return Ok(Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header(
                    "x-amzn-errortype",
                    format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.services.email/"),
                )
                .header("x-amzn-requestid", "fault-proxy")
                .body(Full::new(Bytes::from(body)))
                .expect("static response"));
        }
        Some(f) => {
            if let Some((status, kind, message)) = f.dynamodb_error() {
                let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#);
                return Ok(Response::builder()
                    .status(status)
                    .header("content-type", "application/x-amz-json-1.0")
                    .header("x-amzn-requestid", "fault-proxy")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response"));
            }
        }
        None => {}
    }
    // Once a request has arrived whole, it reaches the upstream even if its
    // caller goes away meanwhile, as with a real endpoint: the forward runs
    // on its own task.
    let uri = format!("{}{}", inner.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut forward = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let forwarded_body = body.clone();
    if let Some(token) = token {
        inner.tokens.lock().unwrap().insert(token);
    }
    let forward = forward.body(Full::new(body)).map_err(|_| Dropped)?;
    let upstream = Arc::clone(&inner);
    let exchange = tokio::spawn(async move {
        let response = upstream.client.request(forward).await.map_err(|_| Dropped)?;
        *upstream.forwarded.lock().unwrap().entry(operation.clone()).or_default() += 1;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
        if parts.status.is_success() {
            upstream.accepted.lock().unwrap().push((operation, forwarded_body));
        }
        Ok::<_, Dropped>((parts, body))
    });
    let (parts, body) = exchange.await.map_err(|_| Dropped)??;
    match fault {
        Some(Fault::LoseResponse) => return Err(Dropped),
        Some(Fault::DelayResponse(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}
