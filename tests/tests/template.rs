//! `template.yaml`, read with a YAML parser (CloudFormation's short tags such
//! as `!Ref` included), declares exactly the routes the code serves, each on
//! the function that owns it, plus the `$default` route; and gives the API
//! functions time for the longest request the code can make.

use std::collections::BTreeSet;

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

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// A route as the template declares it: binary, method, path (`None` for
/// the `$default` route) and its authorizer override, if any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Declared {
    binary: String,
    method: Option<String>,
    path: Option<String>,
    authorizer: Option<String>,
    scopes: BTreeSet<String>,
}

fn declared_routes(template: &Value) -> Vec<Declared> {
    let mut out = Vec::new();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for resource in resources.values() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().expect("Binary").to_string();
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for event in events.values().filter(|e| e["Type"].as_str() == Some("HttpApi")) {
            let props = &event["Properties"];
            out.push(Declared {
                binary: binary.clone(),
                method: props["Method"].as_str().map(str::to_string),
                path: props["Path"].as_str().map(str::to_string),
                authorizer: props["Auth"]["Authorizer"].as_str().map(str::to_string),
                scopes: props["Auth"]["AuthorizationScopes"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                    .collect(),
            });
        }
    }
    out
}

#[test]
fn template_routes_match_the_route_table() {
    let template = template();
    let declared: BTreeSet<(String, String, String)> = declared_routes(&template)
        .into_iter()
        .filter(|d| d.binary != "console")
        .filter_map(|d| Some((d.binary, d.method?, d.path?)))
        .collect();
    let code: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(method, pattern, endpoint)| {
            let path = pattern.replace("{org}", "{orgId}");
            (endpoint.function().name().to_string(), method.to_string(), path)
        })
        .collect();
    assert_eq!(declared, code);
}

#[test]
fn the_gateway_checks_each_routes_scopes_as_the_handlers_do() {
    let declared = declared_routes(&template());
    for (method, pattern, endpoint) in ROUTES {
        let path = pattern.replace("{org}", "{orgId}");
        let route = declared
            .iter()
            .find(|d| d.method.as_deref() == Some(method.as_str()) && d.path.as_deref() == Some(path.as_str()))
            .unwrap_or_else(|| panic!("{method} {path} is in template.yaml"));
        let want: BTreeSet<String> =
            endpoint.scope().map(|s| s.granted_by().iter().map(|s| s.to_string()).collect()).unwrap_or_default();
        assert_eq!(route.scopes, want, "{method} {path}");
        let open = route.authorizer.as_deref() == Some("NONE");
        assert_eq!(open, endpoint.scope().is_none(), "{method} {path}: open exactly when it needs no scope");
    }
}

#[test]
fn one_default_route_on_the_function_quota_local_sends_it_to_open_like_health() {
    let routes = declared_routes(&template());
    let defaults: Vec<&Declared> = routes.iter().filter(|d| d.method.is_none() && d.path.is_none()).collect();
    assert_eq!(defaults.len(), 1, "{routes:?}");
    assert_eq!(defaults[0].binary, quota_local::DEFAULT_ROUTE_FUNCTION.name());
    assert_eq!(defaults[0].authorizer.as_deref(), Some("NONE"));
    // Only health, $default and the console's files are open; every other
    // route has the authorizer.
    let open: BTreeSet<Option<&str>> =
        routes.iter().filter(|d| d.authorizer.as_deref() == Some("NONE")).map(|d| d.path.as_deref()).collect();
    assert_eq!(open, BTreeSet::from([None, Some("/v1/health"), Some("/console"), Some("/console/{proxy+}")]));
}

/// The console's two routes go to its function, GET only and open (the
/// page signs in; the API it calls checks the token), and quota-local
/// serves the same paths.
#[test]
fn the_console_is_served_at_its_routes() {
    let routes = declared_routes(&template());
    let console: BTreeSet<(Option<&str>, Option<&str>, Option<&str>)> = routes
        .iter()
        .filter(|d| d.binary == "console")
        .map(|d| (d.method.as_deref(), d.path.as_deref(), d.authorizer.as_deref()))
        .collect();
    assert_eq!(
        console,
        BTreeSet::from([
            (Some("GET"), Some("/console"), Some("NONE")),
            (Some("GET"), Some("/console/{proxy+}"), Some("NONE"))
        ])
    );
    assert!(console::serves("/console") && console::serves("/console/orgs/acme"));
}

#[test]
fn api_functions_outlast_the_longest_request() {
    let timeout = template()["Globals"]["Function"]["Timeout"].as_u64().expect("Globals.Function.Timeout");
    let worst = quota_shared::timeouts::WORST_CASE_REQUEST.max(quota_shared::timeouts::WORST_CASE_ADMIN_REQUEST);
    // A second's room for what the budgets do not cover (TLS, JSON, logs).
    let room = std::time::Duration::from_secs(1);
    assert!(std::time::Duration::from_secs(timeout) >= worst + room, "{timeout} s must exceed {worst:?} by {room:?}");
}

/// A parameter's `AllowedPattern` as CloudFormation applies it: to the whole
/// value.
fn allowed(template: &Value, parameter: &str, value: &str) -> bool {
    let spec = &template["Parameters"][parameter];
    if let Some(values) = spec["AllowedValues"].as_sequence() {
        return values
            .iter()
            .any(|v| v.as_str() == Some(value) || v.as_u64().map(|n| n.to_string()) == Some(value.into()));
    }
    match spec["AllowedPattern"].as_str() {
        Some(pattern) => regex_lite::Regex::new(&format!("^(?:{pattern})$")).expect("a pattern").is_match(value),
        None => true,
    }
}

/// The `Key=Value` parameter overrides a text tells a user to pass, with
/// the shell variables of the README's examples filled in as they would be.
fn overrides(text: &str, template: &Value) -> Vec<(String, String)> {
    let shell = [
        ("$REGION", "eu-west-1"),
        ("$POOL", "eu-west-1_AbCdEf123"),
        ("$CLIENT", "1h57kf5cpq17m0eml12EXAMPLE"),
        ("$ADMIN_CLIENT", "2admin5cpq17m0eml12EXAMPLE"),
        ("$CONSOLE_CLIENT", "3console5cpq17m0eml1EXAMPLE"),
    ];
    let params = template["Parameters"].as_mapping().unwrap();
    let mut out = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let Some((key, value)) = token.split_once('=') else { continue };
        if !params.contains_key(key) {
            continue;
        }
        let mut value = value.trim_end_matches(',').to_string();
        // Longest names first: $CLIENT is inside $ADMIN_CLIENT.
        let mut vars = shell.to_vec();
        vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        for (name, example) in vars {
            value = value.replace(name, example);
        }
        assert!(!value.contains('$'), "{key}={value}: a shell variable this test does not know");
        out.push((key.to_string(), value));
    }
    out
}

/// Review defect: `ScopePrefix=quota/` (samconfig.toml and the README's
/// Cognito steps) broke the pattern `[!#-.0-~]*`, which excludes `/`:
/// CloudFormation refused the change set. Every value the README,
/// samconfig.toml and the template's defaults give a parameter is one
/// CloudFormation accepts.
#[test]
fn every_documented_parameter_value_is_one_cloudformation_accepts() {
    let template = template();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let samconfig: toml::Table = std::fs::read_to_string(format!("{root}/samconfig.toml")).unwrap().parse().unwrap();
    let sam = samconfig["default"]["deploy"]["parameters"]["parameter_overrides"].as_array().unwrap();
    let sam: Vec<String> = sam.iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let mut values = overrides(&readme, &template);
    values.extend(overrides(&sam.join(" "), &template));
    for (name, spec) in template["Parameters"].as_mapping().unwrap() {
        if let Some(default) =
            spec["Default"].as_str().map(str::to_string).or(spec["Default"].as_u64().map(|n| n.to_string()))
        {
            values.push((name.as_str().unwrap().to_string(), default));
        }
    }
    let given: BTreeSet<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    for must in ["JwtIssuer", "JwtAudience", "ScopePrefix", "SenderEmail", "DashboardUrl", "ConsoleClientId"] {
        assert!(given.contains(must), "no documented value for {must}");
    }
    for (name, value) in &values {
        assert!(allowed(&template, name, value), "{name}={value:?} breaks its AllowedPattern");
    }
    // The README's deploy commands name every app client in the audience.
    for (name, value) in values.iter().filter(|(n, _)| n == "JwtAudience") {
        assert!(!value.is_empty(), "{name}");
    }
    let audiences: Vec<&String> = values.iter().filter(|(n, _)| n == "JwtAudience").map(|(_, v)| v).collect();
    assert!(
        audiences.iter().any(|a| a.split(',').count() == 3),
        "a deploy with app, admin and console clients: {audiences:?}"
    );
}

/// What a parameter's pattern lets through is what the functions accept at
/// start-up, and the other way round: a `SenderEmail` the template takes
/// never stops the functions at init (the API answering 500), and one the
/// functions would refuse is refused by CloudFormation first.
#[test]
fn the_templates_patterns_and_the_functions_config_agree() {
    let template = template();
    let emails = [
        "quota@example.com",
        "q.uota+tag@mail.example.co.uk",
        "Quota <q@example.com>",
        "q@example",
        "q@.example.com",
        "q@example..com",
        "q@example.com.",
        "@example.com",
        "a b@example.com",
        "q@exa@mple.com",
        "jørgen@example.com",
        "q@example.com\n",
        "",
    ];
    for email in emails {
        let code = quota_shared::deps::email_ok(email);
        assert_eq!(allowed(&template, "SenderEmail", email), code, "SenderEmail {email:?}: template and code differ");
    }
    let urls = [
        "https://app.example.com/billing",
        "http://127.0.0.1:3000/v1/health",
        "https://app.example.com/usage?org=acme#top",
        "https://",
        "https:///path",
        "ftp://app.example.com",
        "https://app example.com",
        "https://app.example.com/\t",
        "https://bücher.example/konto",
    ];
    for url in urls {
        let code = quota_shared::deps::url_ok(url);
        assert_eq!(allowed(&template, "DashboardUrl", url), code, "DashboardUrl {url:?}: template and code differ");
    }
    // The template's own examples start the functions.
    let config = quota_shared::deps::Config::new(
        "quota-service-QuotaTable-1A2B3C4D5E6F".into(),
        "quota-service-quota".into(),
        "quota@example.com".into(),
        "https://app.example.com/billing".into(),
    );
    assert!(config.is_ok(), "{config:?}");
}

/// The channel queue gives a delivery the code's attempts and no more, holds
/// it for longer than their schedule, and hides a message in flight for six
/// times the function's timeout; the rule sends exactly the events a channel
/// can take.
#[test]
fn the_channel_queue_and_rule_follow_the_delivery_schedule() {
    use quota_shared::domain::channel::CHANNEL_EVENTS;
    use quota_shared::domain::webhook::{MAX_ATTEMPTS, RETRY_DELAYS};
    let template = template();
    let resources = &template["Resources"];
    let queue = &resources["ChannelQueue"]["Properties"];
    // More receives than attempts: a receive that made none (the table
    // unreachable, a timeout) must not cost a delivery its last attempts.
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() > 2 * u64::from(MAX_ATTEMPTS));
    let source = &resources["DeliverChannelsFunction"]["Properties"]["Events"]["Queue"]["Properties"];
    assert!(source["ScalingConfig"]["MaximumConcurrency"].as_u64().is_some_and(|n| n <= 50), "bounded concurrency");
    assert_eq!(source["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
    let schedule: std::time::Duration = RETRY_DELAYS.iter().sum();
    assert!(queue["MessageRetentionPeriod"].as_u64().unwrap() > schedule.as_secs());
    let timeout = resources["DeliverChannelsFunction"]["Properties"]["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);
    // Every attempt (10 s at most) and its record fit in the function's time.
    assert!(std::time::Duration::from_secs(timeout) > quota_shared::outbound::http::ATTEMPT_TIMEOUT * 3);
    // The longest wait is one a message's visibility can be set to (12 hours at most).
    assert!(RETRY_DELAYS.iter().all(|d| d.as_secs() <= 12 * 3600));
    let pattern = &resources["ChannelEventsRule"]["Properties"]["EventPattern"];
    let kinds: BTreeSet<&str> =
        pattern["detail-type"].as_sequence().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(kinds, CHANNEL_EVENTS.iter().map(|k| k.detail_type()).collect());
    assert_eq!(pattern["source"][0].as_str(), Some("quota-service"));
}

/// CloudWatch refuses an alarm on a `SEARCH` expression ("You can't create
/// an alarm based on the SEARCH expression", CloudWatch user guide): one
/// rolled the whole stack back. Many metrics are alarmed on with a Metrics
/// Insights query (`SELECT …`), which needs its `Period`; every alarm
/// watches one metric or one expression that returns data.
#[test]
fn every_alarm_is_one_cloudwatch_accepts() {
    let template = template();
    let mut alarms = 0;
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        alarms += 1;
        let props = &resource["Properties"];
        let Some(metrics) = props["Metrics"].as_sequence() else {
            assert!(props["MetricName"].as_str().is_some(), "{name:?}: neither a metric nor an expression");
            continue;
        };
        let returned: Vec<_> = metrics.iter().filter(|m| m["ReturnData"].as_bool() != Some(false)).collect();
        assert_eq!(returned.len(), 1, "{name:?}: one expression returns the alarm's data");
        for metric in metrics {
            let Some(expression) = metric.get("Expression") else { continue };
            let text = match expression {
                Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_string(),
                other => other.as_str().unwrap_or_default().to_string(),
            };
            assert!(!text.contains("SEARCH("), "{name:?}: CloudWatch refuses an alarm on SEARCH: {text}");
            if text.trim_start().starts_with("SELECT") {
                assert!(metric["Period"].as_u64().is_some(), "{name:?}: a Metrics Insights alarm needs its Period");
            }
        }
    }
    assert!(alarms > 5, "the template's alarms were read");
}

/// Every function has an alarm on its errors and one on its throttles (the
/// README says so; the channel and console functions had none).
#[test]
fn every_function_has_an_errors_and_a_throttles_alarm() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let watched = |metric: &str| -> BTreeSet<String> {
        resources
            .values()
            .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
            .filter(|r| r["Properties"]["MetricName"].as_str() == Some(metric))
            .filter_map(|r| match &r["Properties"]["Dimensions"][0]["Value"] {
                Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_string),
                _ => None,
            })
            .collect()
    };
    let functions: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter_map(|(name, _)| name.as_str().map(str::to_string))
        .collect();
    assert!(functions.len() >= 9, "{functions:?}");
    assert_eq!(watched("Errors"), functions, "an errors alarm each");
    assert_eq!(watched("Throttles"), functions, "a throttles alarm each");
}

/// A queue that EventBridge may write to names the rule that may
/// (`aws:SourceArn`): an account-wide grant would let any rule in the
/// account fill a dead-letter queue whose alarm pages someone.
#[test]
fn queues_take_events_from_their_own_rules_only() {
    let template = template();
    let mut statements = 0;
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::SQS::QueuePolicy") {
            continue;
        }
        for statement in resource["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            let service = &statement["Principal"]["Service"];
            let services: Vec<&str> = match service.as_sequence() {
                Some(list) => list.iter().filter_map(Value::as_str).collect(),
                None => service.as_str().into_iter().collect(),
            };
            assert!(!services.contains(&"scheduler.amazonaws.com"), "{name:?}: Scheduler sends with its role");
            if services.contains(&"events.amazonaws.com") {
                statements += 1;
                // A rule by its ARN, or the rules on this stack's bus.
                let own = |arn: &Value| match arn {
                    Value::Tagged(t) if t.tag == "GetAtt" => true,
                    Value::Tagged(t) if t.tag == "Sub" => {
                        t.value.as_str().is_some_and(|s| s.contains(":rule/${QuotaEventBus}/"))
                    }
                    _ => false,
                };
                let source = &statement["Condition"]["ArnEquals"]["aws:SourceArn"];
                let named = match source.as_sequence() {
                    Some(list) => !list.is_empty() && list.iter().all(own),
                    None => own(source),
                };
                assert!(named, "{name:?}: no rule named: {statement:?}");
            }
        }
    }
    assert!(statements >= 3, "the channel queue, its dead letters and the job's");
}
