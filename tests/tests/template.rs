//! `template.yaml` declares exactly the routes the code serves, each on the
//! function that owns it.

use std::collections::BTreeSet;

use quota_shared::http::ROUTES;

/// `(function binary, METHOD, path)` for every HttpApi event in the template.
fn template_routes() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut out = BTreeSet::new();
    let (mut binary, mut method) = (String::new(), None::<String>);
    for line in text.lines() {
        let field = |name: &str| -> Option<String> {
            let start = line.find(name)? + name.len();
            let rest = line[start..].trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                return quoted.split_once('"').map(|(value, _)| value.to_string());
            }
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().to_string())
        };
        if let Some(b) = field("Binary:") {
            binary = b;
        }
        if let Some(m) = field("Method:") {
            method = Some(m);
        }
        if let (Some(p), Some(m)) = (field("Path:"), method.as_ref()) {
            out.insert((binary.clone(), m.clone(), p));
            method = None;
        }
    }
    out
}

#[test]
fn template_routes_match_the_route_table() {
    let code: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(method, pattern, endpoint)| {
            let path = pattern.replace("{org}", "{orgId}");
            (endpoint.function().name().to_string(), method.to_string(), path)
        })
        .collect();
    assert_eq!(template_routes(), code);
}
