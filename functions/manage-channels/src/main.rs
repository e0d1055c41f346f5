//! Lambda entry point: build everything once, then serve.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let setup = quota_shared::deps::Setup::from_env_or_exit().await;
    // Channels are kept on the table; deliveries are another function's.
    let deps = setup.store();
    run(service_fn(|req| async { Ok::<_, Error>(manage_channels::handle(&deps, req).await) })).await
}
