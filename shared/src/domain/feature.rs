//! Feature entitlements: whether an org may use a boolean feature, from its
//! plan or its own override. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::catalogue::Catalogue;
use super::org::OrgProfile;

/// Where an entitlement's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Plan,
    Override,
}

/// One feature for one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    pub feature: String,
    pub enabled: bool,
    pub source: Source,
}

/// A feature for an org: `None` when the catalogue has no such feature.
pub fn entitlement(profile: &OrgProfile, feature: &str, catalogue: &Catalogue) -> Option<Entitlement> {
    catalogue.features.get(feature)?;
    let (enabled, source) = match profile.features.get(feature) {
        Some(value) => (*value, Source::Override),
        None => (catalogue.plan(&profile.plan)?.features.get(feature).copied().unwrap_or(false), Source::Plan),
    };
    Some(Entitlement { feature: feature.to_string(), enabled, source })
}

/// Every feature of the catalogue for an org, by name.
pub fn entitlements(profile: &OrgProfile, catalogue: &Catalogue) -> BTreeMap<String, Entitlement> {
    catalogue.features.keys().filter_map(|f| entitlement(profile, f, catalogue).map(|e| (f.clone(), e))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::org::{OrgId, OrgPatch, OrgPatchBody};

    fn profile(json: &str) -> OrgProfile {
        let body: OrgPatchBody = serde_json::from_str(json).unwrap();
        let c = Catalogue::builtin();
        let now = "2026-03-15T10:00:00Z".parse().unwrap();
        OrgPatch::parse(body, c).unwrap().apply(&OrgId::parse("acme").unwrap(), None, c, now)
    }

    #[test]
    fn the_plan_decides_unless_the_org_overrides() {
        let c = Catalogue::builtin();
        let growth = profile(r#"{"plan":"growth","features":{"sso":true,"webhooks":false}}"#);
        let e = |f| entitlement(&growth, f, c).unwrap();
        assert_eq!((e("remove_branding").enabled, e("remove_branding").source), (true, Source::Plan));
        assert_eq!((e("sso").enabled, e("sso").source), (true, Source::Override));
        assert_eq!((e("webhooks").enabled, e("webhooks").source), (false, Source::Override));
        assert_eq!((e("priority_support").enabled, e("priority_support").source), (false, Source::Plan));
        assert_eq!(entitlement(&growth, "fax", c), None);
        assert_eq!(entitlements(&growth, c).len(), c.features.len());
    }
}
