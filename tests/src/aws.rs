//! AWS-shaped inputs, taken from where AWS takes them: the events a
//! deployed resource sends are built from `template.yaml` itself, so the
//! template and the handlers cannot drift apart unnoticed.

use serde_json::Value;

/// `template.yaml`, read with a YAML parser (CloudFormation's short tags,
/// such as `!Ref`, are kept as tagged values).
pub fn template() -> serde_norway::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// The attempt of one scheduled invocation, as EventBridge Scheduler fills
/// in its context attributes.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// `<aws.scheduler.scheduled-time>`, e.g. `2026-03-11T00:15:00Z`.
    pub scheduled_time: &'a str,
    /// `<aws.scheduler.attempt-number>`, from 1.
    pub number: u32,
    /// `<aws.scheduler.execution-id>`: a new one for each attempt.
    pub execution_id: &'a str,
}

pub const SCHEDULE_ARN: &str = "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/quota-UsageJobFunctionDaily";

/// What the daily job's function receives from its schedule: the
/// `ScheduleV2` event of `UsageJobFunction` in `template.yaml`, its `Input`
/// with Scheduler's context attributes filled in (AWS Scheduler user
/// guide, "Adding context attributes"), or Scheduler's default notification
/// when the schedule has no `Input` (`"detail"` is then the string "{}").
pub fn scheduled_invocation(attempt: &Attempt) -> Value {
    let template = template();
    let events = template["Resources"]["UsageJobFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("UsageJobFunction has events");
    let schedules: Vec<&serde_norway::Value> =
        events.values().filter(|e| e["Type"].as_str() == Some("ScheduleV2")).collect();
    assert_eq!(schedules.len(), 1, "one schedule for the job");
    match schedules[0]["Properties"]["Input"].as_str() {
        Some(input) => {
            let filled = input
                .replace("<aws.scheduler.schedule-arn>", SCHEDULE_ARN)
                .replace("<aws.scheduler.scheduled-time>", attempt.scheduled_time)
                .replace("<aws.scheduler.execution-id>", attempt.execution_id)
                .replace("<aws.scheduler.attempt-number>", &attempt.number.to_string());
            assert!(!filled.contains("<aws.scheduler."), "a context attribute Scheduler does not have: {filled}");
            serde_json::from_str(&filled).expect("the schedule's Input is JSON once filled in")
        }
        None => serde_json::json!({
            "version": "0",
            "id": attempt.execution_id,
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "account": "123456789012",
            "time": attempt.scheduled_time,
            "region": "eu-west-1",
            "resources": [SCHEDULE_ARN],
            "detail": "{}",
        }),
    }
}

/// The first attempt of the invocation scheduled for `scheduled_time`.
pub fn scheduled(scheduled_time: &str) -> Value {
    scheduled_invocation(&Attempt { scheduled_time, number: 1, execution_id: "d32c5kddcf5bb8c3" })
}
