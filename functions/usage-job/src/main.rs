//! Lambda entry point: the daily EventBridge schedule and
//! `POST /v1/admin/jobs/daily` (through API Gateway) both land here.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let deps = quota_shared::deps::from_env_or_exit().await;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(usage_job::handle_event(&deps, event.payload).await)
    }))
    .await
}
