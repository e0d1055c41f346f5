//! The OpenAPI contract (`infra/openapi.yaml`), the route table the code
//! serves and `template.yaml` declare the same routes with the same scopes,
//! and the spec names every error code the code can answer.

use quota_shared::domain::reservation::Status;
use std::collections::BTreeSet;

use quota_shared::ApiError;
use quota_shared::api::ROUTES;
use serde_norway::Value;

/// A template string as deployed with the parameters' defaults: `!Sub
/// "${ScopePrefix}quota:read"` is `quota:read`.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().map(|s| s.replace("${ScopePrefix}", "")),
        _ => None,
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is YAML: {e}"))
}

type Route = (String, String, BTreeSet<String>);

fn spec_routes(spec: &Value) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, op) in item.as_mapping().expect("path item") {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            let scopes = op["x-scopes"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{method} {path:?} has x-scopes"))
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            out.insert((method.to_uppercase(), path.as_str().unwrap().to_string(), scopes));
        }
    }
    out
}

fn code_routes() -> BTreeSet<Route> {
    ROUTES
        .iter()
        .map(|(method, pattern, endpoint)| {
            let scopes = endpoint.scope().map(|s| s.granted_by().iter().map(|s| s.to_string()).collect());
            (method.to_string(), pattern.replace("{org}", "{orgId}"), scopes.unwrap_or_default())
        })
        .collect()
}

fn template_routes(template: &Value) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for event in events.values().filter(|e| e["Type"].as_str() == Some("HttpApi")) {
            let props = &event["Properties"];
            let (Some(method), Some(path)) = (props["Method"].as_str(), props["Path"].as_str()) else {
                continue; // the $default route
            };
            if console::serves(path) {
                continue; // the console's files, not the API (tests/template.rs)
            }
            let scopes = props["Auth"]["AuthorizationScopes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|s| text(s).expect("a scope"))
                .collect();
            out.insert((method.to_string(), path.to_string(), scopes));
        }
    }
    out
}

#[test]
fn spec_code_and_template_declare_the_same_routes_and_scopes() {
    let spec = spec_routes(&yaml("infra/openapi.yaml"));
    assert_eq!(spec, code_routes(), "infra/openapi.yaml against the route table");
    assert_eq!(template_routes(&yaml("template.yaml")), code_routes(), "template.yaml against the route table");
}

#[test]
fn the_spec_names_every_error_code() {
    let spec = yaml("infra/openapi.yaml");
    let documented: BTreeSet<&str> =
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let every = [
        ApiError::InvalidRequest(String::new()),
        ApiError::InvalidOrgId,
        ApiError::NotReleasable(String::new()),
        ApiError::Unauthorized,
        ApiError::Forbidden(""),
        ApiError::OrgNotFound,
        ApiError::UnknownResource(String::new()),
        ApiError::NotFound,
        ApiError::MethodNotAllowed(String::new()),
        ApiError::PayloadTooLarge,
        ApiError::IdempotencyKeyReused,
        ApiError::StoreUnavailable,
        ApiError::OutcomeUnknown,
        ApiError::ReservationNotFound,
        ApiError::ReservationEnded(Status::Committed),
        ApiError::ReservationEnded(Status::Released),
        ApiError::ReservationEnded(Status::Expired),
        ApiError::TooManyReservations(0),
        ApiError::GrantNotFound,
        ApiError::TooManyGrants(0),
        ApiError::UnknownFeature(String::new()),
        ApiError::ChannelNotFound,
        ApiError::TooManyChannels(0),
    ]
    .into_iter()
    .chain(
        quota_shared::domain::channel::REFUSAL_CODES
            .into_iter()
            .map(|code| ApiError::InvalidChannel { code, message: String::new() }),
    )
    .collect::<Vec<_>>();
    // Exhaustive: a new variant does not compile here until it is listed above.
    for err in &every {
        match err {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidOrgId
            | ApiError::NotReleasable(_)
            | ApiError::Unauthorized
            | ApiError::Forbidden(_)
            | ApiError::OrgNotFound
            | ApiError::UnknownResource(_)
            | ApiError::NotFound
            | ApiError::MethodNotAllowed(_)
            | ApiError::PayloadTooLarge
            | ApiError::IdempotencyKeyReused
            | ApiError::StoreUnavailable
            | ApiError::OutcomeUnknown
            | ApiError::ReservationNotFound
            | ApiError::TooManyReservations(_)
            | ApiError::GrantNotFound
            | ApiError::TooManyGrants(_)
            | ApiError::UnknownFeature(_)
            | ApiError::InvalidChannel { .. }
            | ApiError::ChannelNotFound
            | ApiError::TooManyChannels(_) => {}
            ApiError::ReservationEnded(status) => match status {
                Status::Committed | Status::Released | Status::Expired => {}
            },
        }
    }
    let codes: BTreeSet<&str> = every.iter().map(ApiError::code).collect();
    assert_eq!(documented, codes);
    // Each status an error can have is a documented response of some operation.
    for err in &every {
        let status = err.status().as_u16().to_string();
        let documented =
            spec["paths"].as_mapping().unwrap().values().any(|item| {
                item.as_mapping().unwrap().values().any(|op| op["responses"].get(status.as_str()).is_some())
            });
        assert!(documented || status == "405", "{} ({status}) is a documented response", err.code());
    }
}

/// The spec's time zones are exactly those the service accepts (chrono-tz's
/// IANA database); on a mismatch the message holds the list to paste.
#[test]
fn the_spec_lists_every_time_zone_the_service_accepts() {
    let spec = yaml("infra/openapi.yaml");
    let listed: Vec<&str> = spec["components"]["schemas"]["TimeZone"]["enum"]
        .as_sequence()
        .expect("components.schemas.TimeZone.enum")
        .iter()
        .map(|z| z.as_str().unwrap())
        .collect();
    let accepted: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    assert!(listed == accepted, "TimeZone enum should be: [{}]", accepted.join(", "));
}
