//! Lambda cold starts, measured the way Lambda sees them: each function's
//! release binary is started against a minimal Lambda Runtime API served
//! here. Init is process start to its first `GET …/invocation/next`; the
//! first invocation is that request answered with an event to the
//! function's `POST …/response`; then the same event is served
//! [`WARM_INVOCATIONS`] more times (warm invocations, the median kept); peak
//! RSS is the process's high-water mark (`VmHWM`) after the last answer.
//! Every start is a new process.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Invocations after the first, on the same process.
pub const WARM_INVOCATIONS: usize = 20;

/// What one start measured.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    pub init: Duration,
    pub first_invocation: Duration,
    /// The median of the warm invocations.
    pub warm_invocation: Duration,
    pub peak_rss_kib: u64,
}

/// The Runtime API's view of one process: when it asked for work, and when
/// (and with what status) it answered each invocation.
#[derive(Default)]
struct Seen {
    next: Vec<Instant>,
    answered: Vec<(Instant, u16)>,
}

struct RuntimeApi {
    event: Bytes,
    seen: Mutex<Seen>,
    answered: Notify,
}

async fn serve(api: Arc<RuntimeApi>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    if path.ends_with("/invocation/next") {
        let more = {
            let mut seen = api.seen.lock().unwrap();
            seen.next.push(Instant::now());
            seen.next.len() <= 1 + WARM_INVOCATIONS
        };
        if !more {
            // Done: the function waits here until it is killed.
            api.answered.notify_one();
            std::future::pending::<()>().await;
        }
        let deadline = chrono::Utc::now().timestamp_millis() + 10_000;
        let response = Response::builder()
            .header("lambda-runtime-aws-request-id", "cold-start-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:eu-west-1:123456789012:function:bench")
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .body(Full::new(api.event.clone()))
            .expect("static response");
        return Ok(response);
    }
    let body = req.into_body().collect().await?.to_bytes();
    if path.ends_with("/response") {
        let status = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["statusCode"].as_u64())
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        api.seen.lock().unwrap().answered.push((Instant::now(), status));
    } else if path.ends_with("/error") {
        api.seen.lock().unwrap().answered.push((Instant::now(), 0));
        api.answered.notify_one();
    }
    Ok(Response::builder().status(202).body(Full::new(Bytes::new())).expect("static response"))
}

/// Starts `binary` once with `env`, answers its first request for work with
/// `event`, and measures. The answer must have `expect_status`, if given.
pub async fn start_once(
    binary: &Path,
    env: &HashMap<String, String>,
    event: &serde_json::Value,
    expect_status: Option<u16>,
) -> anyhow::Result<Start> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let api =
        Arc::new(RuntimeApi { event: Bytes::from(event.to_string()), seen: Mutex::default(), answered: Notify::new() });
    let server = {
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let api = Arc::clone(&api);
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(Arc::clone(&api), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        })
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("the child's pid")?;
    let answered = tokio::time::timeout(Duration::from_secs(20), api.answered.notified()).await;
    let peak_rss_kib = peak_rss_kib(pid).unwrap_or_default();
    child.kill().await.ok();
    server.abort();
    if answered.is_err() {
        bail!("{} did not answer its invocations within 20 s", binary.display());
    }
    let seen = api.seen.lock().unwrap();
    if seen.answered.len() != 1 + WARM_INVOCATIONS {
        bail!("{} failed an invocation", binary.display());
    }
    if let Some(expected) = expect_status
        && let Some((_, status)) = seen.answered.iter().find(|(_, s)| *s != expected)
    {
        bail!("{} answered {status}, not {expected}", binary.display());
    }
    let took: Vec<Duration> = seen.next.iter().zip(&seen.answered).map(|(asked, (done, _))| *done - *asked).collect();
    Ok(Start {
        init: seen.next[0] - started,
        first_invocation: took[0],
        warm_invocation: median(took[1..].to_vec()),
        peak_rss_kib,
    })
}

/// The high-water mark of a live process's resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The median of durations.
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Each function, the sample event it is started with, and the status its
/// answer must have (`None` for the job's schedule, answered with a summary).
const FUNCTIONS: [(&str, &str, Option<u16>); 6] = [
    ("check-quota", "check.json", Some(200)),
    ("increment-usage", "consume.json", Some(200)),
    ("get-usage", "get-usage.json", Some(200)),
    ("manage-orgs", "get-org.json", Some(200)),
    ("admin-reset", "admin-audit.json", Some(200)),
    ("usage-job", "scheduled-daily.json", None),
];

/// `bench cold DIR STARTS [FUNCTION…]`: every function's binary in DIR (or
/// those named), started STARTS times each, in turn.
pub async fn run(dir: std::path::PathBuf, starts: usize, only: &[String]) -> anyhow::Result<()> {
    let functions: Vec<_> =
        FUNCTIONS.iter().filter(|(name, _, _)| only.is_empty() || only.iter().any(|o| o == name)).collect();
    let bench = crate::Bench::start("cold").await?;
    // A limit no run comes near: the consume event crosses no threshold.
    bench.api.org("acme-demo", r#"{"plan":"growth","limits":{"conversations":1000000000000}}"#).await?;
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut env: HashMap<String, String> =
        std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || k == "PATH").collect();
    env.extend(
        [
            ("TABLE_NAME", bench.table.as_str()),
            ("EVENT_BUS_NAME", "quota-bench"),
            ("SENDER_EMAIL", "quota@bench.example"),
            ("DASHBOARD_URL", "https://app.example.com/usage"),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    println!("Cold start: {starts} starts of each function, in turn (median, min-max)");
    println!(
        "{:<17}{:>10}{:>22}{:>12}{:>12}{:>11}",
        "function", "binary", "init", "first inv.", "warm inv.", "peak RSS"
    );
    let mut rows = Vec::new();
    let mut measured: Vec<Vec<Start>> = vec![Vec::new(); functions.len()];
    for _ in 0..starts {
        for (i, (name, event, status)) in functions.iter().enumerate() {
            let text = std::fs::read_to_string(events.join(event))?;
            let event: serde_json::Value = serde_json::from_str(&text)?;
            measured[i].push(start_once(&dir.join(name), &env, &event, *status).await?);
        }
    }
    for ((name, _, _), starts) in functions.iter().zip(measured) {
        let bytes = std::fs::metadata(dir.join(name))?.len();
        let size = bytes as f64 / 1_048_576.0;
        let init: Vec<Duration> = starts.iter().map(|s| s.init).collect();
        let first: Vec<Duration> = starts.iter().map(|s| s.first_invocation).collect();
        let warm: Vec<Duration> = starts.iter().map(|s| s.warm_invocation).collect();
        let rss: Vec<u64> = starts.iter().map(|s| s.peak_rss_kib).collect();
        let (lo, hi) = (init.iter().min().copied().unwrap_or_default(), init.iter().max().copied().unwrap_or_default());
        let rss_mb = *rss.iter().max().unwrap_or(&0) as f64 / 1024.0;
        let (init_ms, first_ms, warm_ms) = (crate::ms(median(init)), crate::ms(median(first)), crate::ms(median(warm)));
        println!(
            "{name:<17}{size:>6.2} MiB{:>9.1} ms ({:>4.1}-{:>4.1}){first_ms:>9.2} ms{warm_ms:>9.2} ms{rss_mb:>7.1} MiB",
            init_ms,
            crate::ms(lo),
            crate::ms(hi),
        );
        rows.push(serde_json::json!({
            "function": name, "binary_bytes": bytes, "binary_mib": size, "init_ms": init_ms,
            "init_min_ms": crate::ms(lo), "init_max_ms": crate::ms(hi), "first_invocation_ms": first_ms,
            "warm_invocation_ms": warm_ms, "peak_rss_mib": rss_mb,
        }));
    }
    crate::save("cold", &serde_json::json!({ "starts": starts, "functions": rows }))
}
