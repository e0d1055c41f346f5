//! Lambda entry point: the console's settings once, then serve its files.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let _ = tracing_subscriber::fmt().json().without_time().try_init();
    let config = console::Config::from_lookup(|name| std::env::var(name).ok());
    let config = &config;
    run(service_fn(|req| async move { Ok::<_, Error>(console::handle(config, &req)) })).await
}
