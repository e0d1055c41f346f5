//! Lambda entry point: build everything once, then serve.

use lambda_http::{Error, run, service_fn};
use quota_shared::{Clock, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let deps = Deps::from_env(Clock::system()).await?;
    run(service_fn(|req| async { Ok::<_, Error>(get_usage::handle(&deps, req).await) })).await
}
