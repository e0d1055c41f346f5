//! Lambda entry point: build everything once, then serve.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let deps = quota_shared::deps::from_env_or_exit().await;
    run(service_fn(|req| async { Ok::<_, Error>(manage_orgs::handle(&deps, req).await) })).await
}
