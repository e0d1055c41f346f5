//! Lambda entry point: the channel queue's messages, in batches (SQS event
//! source, partial batch responses).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let setup = quota_shared::deps::Setup::from_env_or_exit().await;
    let Some(queue_url) = std::env::var("CHANNEL_QUEUE_URL").ok().filter(|u| u.starts_with("https://")) else {
        tracing::error!("cannot start: environment variable CHANNEL_QUEUE_URL is required (the channel queue's URL)");
        std::process::exit(1);
    };
    let sqs = aws_sdk_sqs::Client::from_conf(deliver_channels::sqs_config(&setup.aws).build());
    let deliverer = deliver_channels::Deliverer::new(&setup.store(), sqs, queue_url, &setup.config.dashboard_url);
    let deliverer = &deliverer;
    run(service_fn(|event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
        Ok::<_, Error>(deliverer.handle(event.payload).await)
    }))
    .await
}
