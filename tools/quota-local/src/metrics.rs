//! Counts the DynamoDB requests a client sends, by operation, so tests and
//! the benchmark can state exactly what a call costs. Counts attempts, so a
//! retried request counts twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

#[derive(Debug, Default, Clone)]
pub struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    /// Operations sent since the last call, in order; clears the log.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Operation → count since the last call; clears the log.
    pub fn take_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for op in self.take() {
            *counts.entry(op).or_insert(0) += 1;
        }
        counts
    }
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_string();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(op);
        Ok(())
    }
}

/// The production DynamoDB client (see `quota_shared::clients`), recording
/// its requests in `log`; `endpoint` overrides where it sends them.
pub fn counted_client(
    aws: &aws_config::SdkConfig,
    log: &RequestLog,
    endpoint: Option<&str>,
) -> aws_sdk_dynamodb::Client {
    let mut config = quota_shared::clients::dynamodb(aws).interceptor(log.clone());
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}
