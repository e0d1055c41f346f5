//! `console`: the operator console, served by the stack itself at
//! `/console/` (same origin as the API, so it calls the API with the
//! operator's token and no CORS). Its files are compiled in (`build.rs`);
//! it reads nothing and holds no AWS client.
//!
//! - `GET /console` → `301` to `/console/`
//! - `GET /console/` and any path below it without a file extension →
//!   `index.html` (the console routes in the page)
//! - `GET /console/config.json` → where the console signs in:
//!   `{"apiBase": "", "oidc": null | {"authority", "clientId", "scopes", "redirectPath"},
//!   "fragmentSignIn": false}` (`true` only from quota-local)
//! - `GET /console/<file>` → the file, or `404`

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Where every console path starts.
pub const PREFIX: &str = "/console";

/// How the console signs in: on AWS an OIDC provider (Cognito's hosted UI),
/// authorization code with PKCE; locally ([`Config::local`]) a token in its
/// URL's fragment. Nothing else: a deployed console never takes a token
/// from a link, which could sign someone in as another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub oidc: Option<Oidc>,
    /// Whether a token in the URL's fragment signs in (quota-local only).
    pub fragment_sign_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    /// The issuer: its `/.well-known/openid-configuration` names the endpoints.
    pub authority: String,
    /// A public app client (no secret) of the provider.
    pub client_id: String,
    pub scopes: String,
}

impl Config {
    /// From `CONSOLE_OIDC_AUTHORITY`, `CONSOLE_CLIENT_ID` and
    /// `CONSOLE_SCOPES`; without an authority or a client id, no OIDC.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let value = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let oidc = match (value("CONSOLE_OIDC_AUTHORITY"), value("CONSOLE_CLIENT_ID")) {
            (Some(authority), Some(client_id)) => Some(Oidc {
                authority: authority.trim_end_matches('/').to_string(),
                client_id,
                scopes: value("CONSOLE_SCOPES").unwrap_or_else(|| "openid quota:admin".to_string()),
            }),
            _ => None,
        };
        Config { oidc, fragment_sign_in: false }
    }

    /// quota-local's: a token in the URL's fragment, no provider.
    pub fn local() -> Config {
        Config { oidc: None, fragment_sign_in: true }
    }

    fn json(&self) -> serde_json::Value {
        let oidc = self.oidc.as_ref().map(|o| {
            serde_json::json!({
                "authority": o.authority, "clientId": o.client_id, "scopes": o.scopes, "redirectPath": "/console/",
            })
        });
        serde_json::json!({ "apiBase": "", "oidc": oidc, "fragmentSignIn": self.fragment_sign_in })
    }
}

/// Whether `path` is the console's.
pub fn serves(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

pub fn handle(config: &Config, req: &Request) -> Response<Body> {
    let path = req.uri().path();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").with_header(header::ALLOW, "GET, HEAD");
    }
    if path == PREFIX {
        return text(StatusCode::MOVED_PERMANENTLY, "").with_header(header::LOCATION, "/console/");
    }
    let Some(name) = path.strip_prefix("/console/") else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    if name == "config.json" {
        return file(serde_json::to_vec(&config.json()).unwrap_or_default(), "application/json", false);
    }
    let wanted =
        if name.is_empty() || !name.rsplit('/').next().unwrap_or_default().contains('.') { "index.html" } else { name };
    match ASSETS.iter().find(|(n, _, _)| *n == wanted) {
        // Hashed or not, assets change with each deploy: revalidate.
        Some((_, bytes, kind)) => file(bytes.to_vec(), kind, wanted == "index.html"),
        None if wanted == "index.html" => {
            text(StatusCode::SERVICE_UNAVAILABLE, "the console was not built into this deployment")
        }
        None => text(StatusCode::NOT_FOUND, "not found"),
    }
}

trait WithHeader {
    fn with_header(self, name: header::HeaderName, value: &'static str) -> Self;
}

impl WithHeader for Response<Body> {
    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers_mut().insert(name, HeaderValue::from_static(value));
        self
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    secure(response)
}

fn file(bytes: Vec<u8>, kind: &'static str, page: bool) -> Response<Body> {
    let body = match String::from_utf8(bytes) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if page {
        // The page's scripts and styles are its own files; it talks to this
        // origin and, to sign in, the OIDC provider.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' https:; img-src 'self' data:; \
                 style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' https:",
            ),
        );
    }
    secure(response)
}

fn secure(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<Body> {
        let req = lambda_http::http::Request::builder().uri(path).body(Body::Empty).unwrap();
        handle(&Config::default(), &req)
    }

    #[test]
    fn paths() {
        assert!(serves("/console") && serves("/console/") && serves("/console/orgs/acme"));
        assert!(!serves("/consoles") && !serves("/v1/console"));
        let moved = get("/console");
        assert_eq!(moved.status(), 301);
        assert_eq!(moved.headers()["location"], "/console/");
        assert_eq!(get("/console/nope.js").status(), 404);
        let config = get("/console/config.json");
        assert_eq!(config.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(config.body().as_ref()).unwrap();
        // A deployed console without a provider takes no token from a link.
        assert_eq!(body, serde_json::json!({ "apiBase": "", "oidc": null, "fragmentSignIn": false }));
        let from_env = Config::from_lookup(|_| None);
        assert!(!from_env.fragment_sign_in && Config::local().fragment_sign_in);
        // The page, for the console's own paths: the committed build is in.
        let page = get("/console/orgs/acme");
        assert_eq!(page.status(), 200);
        assert!(String::from_utf8_lossy(page.body().as_ref()).contains("<html"), "index.html");
        assert_eq!(get("/console/").headers()["content-type"], "text/html; charset=utf-8");
        assert!(ASSETS.iter().any(|(name, _, _)| name.ends_with(".js")), "the script is built in");
    }

    #[test]
    fn oidc_settings_need_an_authority_and_a_client() {
        let only = |pairs: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
        };
        assert_eq!(only(&[("CONSOLE_CLIENT_ID", "abc")]).oidc, None);
        let config = only(&[
            ("CONSOLE_OIDC_AUTHORITY", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X/"),
            ("CONSOLE_CLIENT_ID", "abc"),
        ]);
        let oidc = config.oidc.unwrap();
        assert_eq!(oidc.authority, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X");
        assert_eq!(oidc.scopes, "openid quota:admin");
    }
}
