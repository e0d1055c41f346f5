//! The table's definition, for local runs and tests. In AWS the table is
//! created by `template.yaml`; function code never creates tables.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::StoreError;

/// Creates the table (with the job's index, and its TTL) unless it exists.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), StoreError> {
    if client.describe_table().table_name(table).send().await.is_ok() {
        return Ok(());
    }
    let attr =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr(super::items::JOB_ORG)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(super::items::JOB_INDEX)
                .key_schema(key(super::items::JOB_ORG, KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()?,
        )
        .send()
        .await;
    if let Err(err) = created {
        // Another process may have created it meanwhile.
        if !err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) {
            return Err(err.into());
        }
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build()?)
        .send()
        .await
        .map(|_| ())
        .or_else(|err| {
            // Already enabled is fine.
            if err.as_service_error().map(|e| e.to_string()).unwrap_or_default().contains("already enabled") {
                Ok(())
            } else {
                Err(err.into())
            }
        })
}
