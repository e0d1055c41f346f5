//! Lambda entry point: build everything once, then serve.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let setup = quota_shared::deps::Setup::from_env_or_exit().await;
    // Threshold emails and events go out from the consume itself.
    let deps = setup.store().with_email(&setup).with_events(&setup);
    run(service_fn(|req| async { Ok::<_, Error>(increment_usage::handle(&deps, req).await) })).await
}
