//! What the job's function is invoked with, read through the types of the
//! `aws_lambda_events` crate, as AWS sends it:
//!
//! - **EventBridge Scheduler** (`template.yaml`, `ScheduleV2`), with the
//!   schedule's `Input`: an EventBridge-shaped envelope whose `time` is the
//!   time the invocation was scheduled for (`<aws.scheduler.scheduled-time>`)
//!   and whose `id` is Scheduler's execution id (a new one for each attempt:
//!   `<aws.scheduler.execution-id>`). A run is named after the scheduled
//!   time, which every retry of one scheduled invocation shares, so a retry
//!   continues the run it began. Without an `Input`, Scheduler sends its
//!   default notification (`"source": "aws.scheduler"`, `"detail"` the
//!   *string* `"{}"`); that starts the day's run too, named after the day.
//! - **`DailyJobContinued`** on the service's bus (an EventBridge rule's
//!   event): a run handed over by an earlier invocation.
//! - **API Gateway** (HTTP API, payload 2.0): `POST /v1/admin/jobs/daily`.
//!
//! Anything else starts nothing.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use quota_shared::bus::EventKind;
use serde::Deserialize;

/// EventBridge Scheduler's `source` and `detail-type`.
pub const SCHEDULER_SOURCE: &str = "aws.scheduler";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// One invocation of the job's function.
#[derive(Debug)]
pub enum Invocation {
    /// The schedule: start (or, on a retry, continue) the run `run`.
    Scheduled(ScheduledRun),
    /// `DailyJobContinued`: resume run `run` at part `part`.
    Continued { run: String, part: u32 },
    /// `POST /v1/admin/jobs/daily`, through API Gateway.
    Http(Box<Request>),
    /// An event the job does not run on: its `source` and `detail-type`,
    /// when it had them.
    Other { source: Option<String>, detail_type: Option<String> },
}

/// A scheduled invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRun {
    /// The run's name: the same for every attempt at one scheduled
    /// invocation.
    pub run: String,
    /// When the invocation was scheduled for.
    pub scheduled_for: DateTime<Utc>,
    /// Scheduler's attempt number, when the schedule's `Input` carries it.
    pub attempt: Option<u32>,
}

/// The `detail` of a Scheduler invocation: the context the schedule's
/// `Input` asks for, or the default notification's `"{}"` (a string).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SchedulerDetail {
    Context {
        #[serde(rename = "attemptNumber")]
        attempt_number: String,
    },
    Default(String),
}

/// `DailyJobContinued`'s `detail` (`docs/events.md`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Continued {
    run_id: String,
    part: u32,
}

impl Invocation {
    pub fn parse(payload: serde_json::Value) -> Invocation {
        // An EventBridge-shaped event has `source`, `detail-type` and
        // `detail`; an API Gateway request has none of them.
        match serde_json::from_value::<EventBridgeEvent<serde_json::Value>>(payload.clone()) {
            Ok(event) => Invocation::of_event(event),
            Err(_) => match lambda_http::request::from_str(&payload.to_string()) {
                Ok(request) if is_gateway_v2(&request) => Invocation::Http(Box::new(request)),
                _ => Invocation::Other { source: None, detail_type: None },
            },
        }
    }

    fn of_event(event: EventBridgeEvent<serde_json::Value>) -> Invocation {
        let continued = EventKind::DailyJobContinued;
        let other = |event: &EventBridgeEvent<serde_json::Value>| Invocation::Other {
            source: Some(event.source.clone()),
            detail_type: Some(event.detail_type.clone()),
        };
        if event.source == SCHEDULER_SOURCE && event.detail_type == SCHEDULED_EVENT {
            let Some(time) = event.time else { return other(&event) };
            return match serde_json::from_value::<SchedulerDetail>(event.detail.clone()) {
                Ok(SchedulerDetail::Context { attempt_number }) => Invocation::Scheduled(ScheduledRun {
                    run: format!("sched-{}", time.format("%Y%m%dT%H%M%SZ")),
                    scheduled_for: time,
                    attempt: attempt_number.parse().ok(),
                }),
                Ok(SchedulerDetail::Default(detail)) => {
                    tracing::warn!(detail, "the schedule has no Input: its run is named after the day");
                    Invocation::Scheduled(ScheduledRun {
                        run: format!("sched-{}", time.format("%Y%m%d")),
                        scheduled_for: time,
                        attempt: None,
                    })
                }
                Err(_) => other(&event),
            };
        }
        if event.source == continued.source() && event.detail_type == continued.detail_type() {
            return match serde_json::from_value::<Continued>(event.detail.clone()) {
                Ok(Continued { run_id, part }) if valid_run_id(&run_id) => Invocation::Continued { run: run_id, part },
                _ => other(&event),
            };
        }
        other(&event)
    }
}

/// A run id as the job names runs: short, and safe in a table key.
fn valid_run_id(id: &str) -> bool {
    (1..=96).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

fn is_gateway_v2(request: &Request) -> bool {
    use lambda_http::RequestExt;
    matches!(request.request_context_ref(), Some(lambda_http::request::RequestContext::ApiGatewayV2(_)))
}

/// An API Gateway HTTP API (payload 2.0) response.
pub fn gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Empty => None,
        other => Some(other),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Scheduler's default notification, as the AWS Scheduler user guide and
    /// cloud-custodian PR 9566 show it: `detail` is the string "{}".
    #[test]
    fn schedulers_default_notification_starts_the_days_run() {
        let event = json!({
            "version": "0", "id": "d32c5kddcf5bb8c3", "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": "123456789012", "time": "2026-12-07T00:15:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:scheduler:eu-west-1:123456789012:schedule/default/daily"], "detail": "{}"
        });
        let Invocation::Scheduled(run) = Invocation::parse(event) else { panic!("not a scheduled run") };
        assert_eq!((run.run.as_str(), run.attempt), ("sched-20261207", None));
    }

    #[test]
    fn a_continued_run_needs_its_id_and_part() {
        let event = |detail: serde_json::Value| json!({ "source": "quota-service.job", "detail-type": "DailyJobContinued", "detail": detail });
        assert!(matches!(
            Invocation::parse(event(json!({ "runId": "sched-20261207T001500Z", "part": 2 }))),
            Invocation::Continued { part: 2, .. }
        ));
        for bad in [json!({ "runId": "x" }), json!({ "runId": "a/b", "part": 2 }), json!("{}")] {
            assert!(matches!(Invocation::parse(event(bad.clone())), Invocation::Other { .. }), "{bad}");
        }
    }

    #[test]
    fn other_events_and_garbage_start_nothing() {
        for event in [
            json!({ "source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-12-07T00:15:00Z", "detail": {} }),
            json!({ "source": "quota-service", "detail-type": "DailyJobContinued", "detail": { "runId": "r", "part": 2 } }),
            json!({ "hello": "world" }),
            json!([]),
        ] {
            assert!(matches!(Invocation::parse(event.clone()), Invocation::Other { .. }), "{event}");
        }
    }
}
