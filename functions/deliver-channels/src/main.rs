//! Lambda entry point: the channel queue's messages, in batches (SQS event
//! source, partial batch responses).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    quota_shared::deps::init_tracing();
    let setup = quota_shared::deps::Setup::from_env_or_exit().await;
    let queue = |name: &str| match std::env::var(name).ok().filter(|u| u.starts_with("https://")) {
        Some(url) => url,
        None => {
            tracing::error!(variable = name, "cannot start: the environment variable must be a queue's https URL");
            std::process::exit(1);
        }
    };
    let queues = deliver_channels::Queues {
        queue_url: queue("CHANNEL_QUEUE_URL"),
        dead_letters_url: queue("CHANNEL_DEAD_LETTER_QUEUE_URL"),
    };
    let sqs = aws_sdk_sqs::Client::from_conf(deliver_channels::sqs_config(&setup.aws).build());
    let deliverer = deliver_channels::Deliverer::new(&setup.store(), sqs, queues, &setup.config.dashboard_url);
    let deliverer = &deliverer;
    run(service_fn(|event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
        Ok::<_, Error>(deliverer.handle(event.payload).await)
    }))
    .await
}
