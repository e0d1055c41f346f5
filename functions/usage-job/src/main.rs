//! Lambda entry point: the daily schedule, `DailyJobContinued` (a run
//! handed over by an earlier invocation) and `POST /v1/admin/jobs/daily`
//! (through API Gateway) all land here. A run stops taking new pages
//! `DEADLINE_MARGIN` before Lambda's deadline, and new orgs
//! `CUTOFF_MARGIN` before it, and hands the rest over. One that is
//! incomplete fails the invocation, so Lambda retries it.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let setup = quota_shared::deps::Setup::from_env_or_exit().await;
    let deps = setup.store().with_email(&setup).with_events(&setup);
    let deps = &deps;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        let options = usage_job::Options::for_lambda(event.context.deadline);
        usage_job::handle_event(deps, event.payload, options).await.map_err(Error::from)
    }))
    .await
}
