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

/// A DynamoDB client that records its requests in `log`.
pub fn counted_client(aws: &aws_config::SdkConfig, log: &RequestLog) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(aws).interceptor(log.clone()).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
