//! Lambda entry point: the daily EventBridge schedule and
//! `POST /v1/admin/jobs/daily` (through API Gateway) both land here. A
//! scheduled run that is incomplete fails the invocation, so EventBridge
//! retries it.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let deps = quota_shared::deps::from_env_or_exit().await;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        usage_job::handle_event(&deps, event.payload).await.map_err(Error::from)
    }))
    .await
}
