//! Who is calling, and may they. The claims come from API Gateway's JWT
//! authorizer (`requestContext.authorizer.jwt.claims`), which has already
//! verified the token; here we only read them and decide.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::error::ApiError;
use crate::domain::org::OrgId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
    /// An org's own settings (its notification channels): `quota:admin`,
    /// or `quota:write` on a token bound to that org, so that a customer
    /// manages its own channels and an app's unbound token manages none.
    OwnOrg,
}

impl Scope {
    /// The token scopes that grant this one (admin implies the others): the
    /// route's `AuthorizationScopes` in `template.yaml`, any one of which
    /// API Gateway accepts.
    pub fn granted_by(self) -> &'static [&'static str] {
        match self {
            Scope::Read => &["quota:read", "quota:admin"],
            Scope::Write | Scope::OwnOrg => &["quota:write", "quota:admin"],
            Scope::Admin => &["quota:admin"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "quota:read",
            Scope::Write | Scope::OwnOrg => "quota:write",
            Scope::Admin => "quota:admin",
        }
    }
}

/// Which orgs a token may touch, from its `org_id` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// No `org_id` claim: any org (subject to the scopes).
    Any,
    /// Only this org.
    Org(OrgId),
    /// An `org_id` claim that names no valid org: empty, a non-string value
    /// as the gateway renders it (`null`, `true`, `[a b]`, …), or ill-formed.
    /// Such a token opens nothing (fail closed).
    Invalid,
}

impl Binding {
    fn from_claim(claim: Option<&String>) -> Binding {
        let Some(raw) = claim else { return Binding::Any };
        // API Gateway hands every claim over as a string; a JSON null,
        // boolean or array arrives as its text.
        if matches!(raw.as_str(), "null" | "true" | "false" | "undefined") {
            return Binding::Invalid;
        }
        OrgId::parse(raw).map_or(Binding::Invalid, Binding::Org)
    }
}

/// Claim values that are a JSON non-string as API Gateway renders it.
const NOT_A_NAME: &[&str] = &["null", "true", "false", "undefined"];

/// The scopes' prefix the gateway checks: `SCOPE_PREFIX`, which the
/// template sets from its `ScopePrefix` parameter (possibly empty). Unset
/// (quota-local, the tests), a scope may carry any prefix.
fn configured_prefix() -> Option<&'static str> {
    static PREFIX: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| std::env::var("SCOPE_PREFIX").ok()).as_deref()
}

/// The scopes a token grants, read as API Gateway's JWT authorizer reads
/// them: from `scope` (space-separated, RFC 8693) and `scp` (as Okta and
/// Azure AD send them), either of which may be a JSON array, which the
/// gateway passes on as `[a b]`. A scope carries its resource server's
/// prefix, as Cognito's do (`quota/quota:read`). With a configured prefix,
/// only scopes with exactly that one count, as at the gateway: a token that
/// passed it with `quota/quota:write` must not become an admin through
/// another resource server's `x/quota:admin`.
fn scopes_of(claims: &std::collections::HashMap<String, String>, prefix: Option<&str>) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for claim in ["scope", "scp"].iter().filter_map(|name| claims.get(*name)) {
        let text = claim.trim();
        let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        for word in text.split(|c: char| c.is_whitespace() || c == ',') {
            let word = word.trim_matches('"');
            let name = match prefix {
                Some(prefix) => match word.strip_prefix(prefix) {
                    Some(name) => name,
                    None => continue,
                },
                None => word.rsplit('/').next().unwrap_or(word),
            };
            let scope = match name {
                "quota:read" => Scope::Read,
                "quota:write" => Scope::Write,
                "quota:admin" => Scope::Admin,
                _ => continue,
            };
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
    }
    scopes
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: who acts, as written to the audit log.
    pub subject: String,
    pub scopes: Vec<Scope>,
    pub binding: Binding,
}

impl Principal {
    /// The principal behind a request, or 401.
    pub fn from_request(req: &Request) -> Result<Principal, ApiError> {
        let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
            return Err(ApiError::Unauthorized);
        };
        let claims = ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims)
            .ok_or(ApiError::Unauthorized)?;
        // The gateway renders a JSON null (or a non-string) as text: such a
        // `sub` names nobody.
        let subject = claims
            .get("sub")
            .filter(|s| !s.is_empty() && !NOT_A_NAME.contains(&s.as_str()) && !s.starts_with('['))
            .ok_or(ApiError::Unauthorized)?;
        Ok(Principal {
            subject: subject.clone(),
            scopes: scopes_of(claims, configured_prefix()),
            binding: Binding::from_claim(claims.get("org_id")),
        })
    }

    /// `quota:admin` implies the others.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }

    /// 403 unless the token has `scope` and, when bound to an org, that org.
    /// Routes that need `quota:admin` refuse org-bound tokens outright: an
    /// org's own token must not change its plan or reset its quota. A token
    /// with an invalid binding is refused everywhere.
    pub fn authorize(&self, scope: Scope, org: Option<&OrgId>) -> Result<(), ApiError> {
        if self.binding == Binding::Invalid {
            return Err(ApiError::Forbidden("this token's org_id claim is not a valid organization id"));
        }
        if scope == Scope::OwnOrg {
            return match &self.binding {
                Binding::Any if self.has(Scope::Admin) => Ok(()),
                Binding::Org(bound) if self.has(Scope::Write) && org == Some(bound) => Ok(()),
                Binding::Org(bound) if org != Some(bound) => {
                    Err(ApiError::Forbidden("this token is bound to another organization"))
                }
                _ => Err(ApiError::Forbidden(
                    "an org's channels need quota:admin, or quota:write on a token bound to that org",
                )),
            };
        }
        if !self.has(scope) {
            return Err(ApiError::Forbidden(match scope {
                Scope::Read => "this route needs the quota:read scope",
                Scope::Write => "this route needs the quota:write scope",
                Scope::Admin => "this route needs the quota:admin scope",
                Scope::OwnOrg => unreachable!("decided above"),
            }));
        }
        if let Binding::Org(bound) = &self.binding {
            if scope == Scope::Admin {
                return Err(ApiError::Forbidden("an org-bound token cannot use admin routes"));
            }
            if org.is_some_and(|o| o != bound) {
                return Err(ApiError::Forbidden("this token is bound to another organization"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[Scope], org: Option<&str>) -> Principal {
        Principal {
            subject: "u".into(),
            scopes: scopes.to_vec(),
            binding: Binding::from_claim(org.map(str::to_string).as_ref()),
        }
    }

    #[test]
    fn admin_implies_read_and_write() {
        let admin = principal(&[Scope::Admin], None);
        assert!(admin.has(Scope::Read) && admin.has(Scope::Write));
        let reader = principal(&[Scope::Read], None);
        assert!(!reader.has(Scope::Write));
    }

    #[test]
    fn scopes_may_carry_their_resource_servers_prefix() {
        use std::collections::HashMap;
        let scopes = |claim: &str| {
            let claims =
                HashMap::from([("sub".to_string(), "c".to_string()), ("scope".to_string(), claim.to_string())]);
            let event = serde_json::json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": {},
                "requestContext": { "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                    "http": { "method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "1.1.1.1", "userAgent": "u" },
                    "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
                    "authorizer": { "jwt": { "claims": claims, "scopes": null } } },
                "isBase64Encoded": false
            });
            let req = lambda_http::request::from_str(&event.to_string()).unwrap();
            Principal::from_request(&req).unwrap().scopes
        };
        assert_eq!(scopes("quota/quota:read quota/quota:write"), vec![Scope::Read, Scope::Write]);
        // An array-valued claim, as the gateway passes it on.
        assert_eq!(scopes("[quota:read quota:write]"), vec![Scope::Read, Scope::Write]);
        assert_eq!(scopes("https://api.example.com/quota:admin"), vec![Scope::Admin]);
        assert_eq!(scopes("quota:read openid"), vec![Scope::Read]);
        assert_eq!(scopes("quota/read quota:reader"), vec![]);
    }

    #[test]
    fn with_a_configured_prefix_only_scopes_with_exactly_it_count() {
        use std::collections::HashMap;
        let scopes = |claim: &str, prefix: &str| {
            scopes_of(&HashMap::from([("scope".to_string(), claim.to_string())]), Some(prefix))
        };
        // Another resource server's scope of the same name grants nothing.
        assert_eq!(scopes("quota/quota:write x/quota:admin", "quota/"), vec![Scope::Write]);
        assert_eq!(scopes("quota/quota:read https://api.example.com/quota:admin", "quota/"), vec![Scope::Read]);
        assert_eq!(scopes("quota:admin", "quota/"), vec![]);
        // No prefix configured (the gateway checks bare names): bare names only.
        assert_eq!(scopes("quota:read quota/quota:admin", ""), vec![Scope::Read]);
        assert_eq!(scopes("https://api.example.com/quota:admin", "https://api.example.com/"), vec![Scope::Admin]);
    }

    #[test]
    fn org_bound_tokens() {
        let acme = OrgId::parse("acme").unwrap();
        let other = OrgId::parse("other").unwrap();
        let p = principal(&[Scope::Admin], Some("acme"));
        assert!(p.authorize(Scope::Write, Some(&acme)).is_ok());
        assert!(matches!(p.authorize(Scope::Write, Some(&other)), Err(ApiError::Forbidden(_))));
        assert!(matches!(p.authorize(Scope::Admin, Some(&acme)), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn an_orgs_own_settings_take_the_admin_or_that_orgs_own_write_token() {
        let acme = OrgId::parse("acme").unwrap();
        let other = OrgId::parse("other").unwrap();
        let ok = |p: Principal, org: &OrgId| p.authorize(Scope::OwnOrg, Some(org)).is_ok();
        assert!(ok(principal(&[Scope::Admin], None), &acme), "the platform's admin");
        assert!(ok(principal(&[Scope::Write], Some("acme")), &acme), "the org's own token");
        assert!(ok(principal(&[Scope::Admin], Some("acme")), &acme), "admin implies write, bound");
        assert!(!ok(principal(&[Scope::Write], Some("acme")), &other), "another org's");
        assert!(!ok(principal(&[Scope::Read, Scope::Write], None), &acme), "an app's unbound token");
        assert!(!ok(principal(&[Scope::Read], Some("acme")), &acme), "read only");
        assert!(!ok(principal(&[Scope::Write], Some("null")), &acme), "an invalid binding");
    }

    #[test]
    fn a_present_but_invalid_org_claim_opens_nothing() {
        let acme = OrgId::parse("acme").unwrap();
        for claim in ["", "null", "true", "false", "undefined", "[acme]", "{}", "a b", &"x".repeat(65)] {
            let p = principal(&[Scope::Read, Scope::Write], Some(claim));
            assert_eq!(p.binding, Binding::Invalid, "{claim:?}");
            assert!(matches!(p.authorize(Scope::Read, Some(&acme)), Err(ApiError::Forbidden(_))), "{claim:?}");
            assert!(matches!(p.authorize(Scope::Read, None), Err(ApiError::Forbidden(_))), "{claim:?}");
        }
        // A number is a valid org id, as the gateway passes it ("12345").
        assert_eq!(principal(&[Scope::Read], Some("12345")).binding, Binding::Org(OrgId::parse("12345").unwrap()));
        assert_eq!(principal(&[Scope::Read], None).binding, Binding::Any);
    }
}
