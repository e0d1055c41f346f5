//! The plan catalogue: resources and plans as data (`shared/plans.json`).
//!
//! The file is compiled into every binary and checked once, on first use:
//! every plan must define every resource, so a lookup never misses.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::locale::Locale;

/// How a resource is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// Counts within the current period; starts from 0 in the next one.
    Period,
    /// A current count: consumed on create, released on delete.
    Total,
}

/// What happens at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// A consume that would pass the limit is refused.
    Hard,
    /// Allowed; the excess is overage, kept for billing.
    Soft,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Hard => "hard",
            Enforcement::Soft => "soft",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hard" => Some(Enforcement::Hard),
            "soft" => Some(Enforcement::Soft),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Names {
    pub en: String,
    pub da: String,
}

impl Names {
    pub fn get(&self, locale: Locale) -> &str {
        match locale {
            Locale::En => &self.en,
            Locale::Da => &self.da,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceDef {
    pub kind: ResourceKind,
    pub unit: String,
    pub names: Names,
}

/// A resource's limit on one plan. `limit: None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub limit: Option<i64>,
    pub enforcement: Enforcement,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDef {
    pub names: Names,
    /// Days of free trial from org creation; only plans that have one expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
    /// Every feature of the catalogue: whether the plan includes it.
    #[serde(default)]
    pub features: BTreeMap<String, bool>,
    pub limits: BTreeMap<String, Allowance>,
}

/// A boolean feature a plan includes or not (an org may override it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureDef {
    pub names: Names,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalogue {
    pub resources: BTreeMap<String, ResourceDef>,
    #[serde(default)]
    pub features: BTreeMap<String, FeatureDef>,
    pub plans: BTreeMap<String, PlanDef>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("plans.json does not parse: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("plan {plan} has no limit for resource {resource}")]
    MissingLimit { plan: String, resource: String },
    #[error("plan {plan} limits unknown resource {resource}")]
    UnknownResource { plan: String, resource: String },
    #[error("plan {plan}: limit for {resource} is negative")]
    NegativeLimit { plan: String, resource: String },
    #[error("plan {plan} does not say whether it includes feature {feature}")]
    MissingFeature { plan: String, feature: String },
    #[error("plan {plan} names unknown feature {feature}")]
    UnknownFeature { plan: String, feature: String },
}

impl Catalogue {
    /// Parses and checks a catalogue.
    pub fn from_json(json: &str) -> Result<Self, CatalogueError> {
        let catalogue: Catalogue = serde_json::from_str(json)?;
        for (plan, def) in &catalogue.plans {
            for resource in catalogue.resources.keys() {
                if !def.limits.contains_key(resource) {
                    return Err(CatalogueError::MissingLimit { plan: plan.clone(), resource: resource.clone() });
                }
            }
            for (resource, allowance) in &def.limits {
                if !catalogue.resources.contains_key(resource) {
                    return Err(CatalogueError::UnknownResource { plan: plan.clone(), resource: resource.clone() });
                }
                if allowance.limit.is_some_and(|l| l < 0) {
                    return Err(CatalogueError::NegativeLimit { plan: plan.clone(), resource: resource.clone() });
                }
            }
            if let Some(feature) = catalogue.features.keys().find(|f| !def.features.contains_key(*f)) {
                return Err(CatalogueError::MissingFeature { plan: plan.clone(), feature: feature.clone() });
            }
            if let Some(feature) = def.features.keys().find(|f| !catalogue.features.contains_key(*f)) {
                return Err(CatalogueError::UnknownFeature { plan: plan.clone(), feature: feature.clone() });
            }
        }
        Ok(catalogue)
    }

    /// The catalogue shipped with the service.
    pub fn builtin() -> &'static Catalogue {
        static BUILTIN: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The file is part of the build and covered by a unit test.
            Catalogue::from_json(include_str!("../../plans.json")).expect("plans.json is valid")
        })
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceDef> {
        self.resources.get(name)
    }

    pub fn plan(&self, name: &str) -> Option<&PlanDef> {
        self.plans.get(name)
    }

    /// The plan's allowance for a resource, with the org's override applied.
    pub fn allowance(&self, plan: &str, resource: &str, overrides: &BTreeMap<String, i64>) -> Option<Allowance> {
        let mut allowance = *self.plan(plan)?.limits.get(resource)?;
        if let Some(limit) = overrides.get(resource) {
            allowance.limit = Some(*limit);
        }
        Some(allowance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_has_the_seed_limits() {
        let c = Catalogue::builtin();
        let none = BTreeMap::new();
        let conv = |plan| c.allowance(plan, "conversations", &none).unwrap();
        assert_eq!(conv("free"), Allowance { limit: Some(100), enforcement: Enforcement::Hard });
        assert_eq!(conv("basic"), Allowance { limit: Some(100), enforcement: Enforcement::Soft });
        assert_eq!(conv("growth"), Allowance { limit: Some(300), enforcement: Enforcement::Soft });
        assert_eq!(conv("pro"), Allowance { limit: Some(750), enforcement: Enforcement::Soft });
        for (name, plan) in &c.plans {
            for (resource, allowance) in &plan.limits {
                let expected =
                    if name == "free" || resource != "conversations" { Enforcement::Hard } else { Enforcement::Soft };
                assert_eq!(allowance.enforcement, expected, "{name}/{resource}");
            }
        }
        assert_eq!(c.plan("free").unwrap().trial_days, Some(30));
        assert_eq!(c.resource("conversations").unwrap().kind, ResourceKind::Period);
        assert_eq!(c.resource("storage").unwrap().kind, ResourceKind::Total);
    }

    #[test]
    fn override_replaces_the_plan_limit() {
        let c = Catalogue::builtin();
        let overrides = BTreeMap::from([("contacts".to_string(), 7)]);
        let a = c.allowance("pro", "contacts", &overrides).unwrap();
        assert_eq!(a.limit, Some(7));
        assert_eq!(a.enforcement, Enforcement::Hard);
    }

    #[test]
    fn plans_include_more_features_as_they_go_up() {
        let c = Catalogue::builtin();
        let on = |plan: &str| c.plan(plan).unwrap().features.values().filter(|v| **v).count();
        assert_eq!((on("free"), on("basic"), on("growth"), on("pro")), (0, 2, 5, 7));
        assert_eq!(c.features.len(), 7);
        assert!(c.plan("growth").unwrap().features["remove_branding"]);
        assert!(!c.plan("basic").unwrap().features["remove_branding"]);
    }

    #[test]
    fn a_plan_must_say_for_every_feature() {
        let json = |features: &str| {
            format!(
                r#"{{"resources":{{}},"features":{{"sso":{{"names":{{"en":"SSO","da":"SSO"}}}}}},
                "plans":{{"p":{{"names":{{"en":"P","da":"P"}},"limits":{{}},"features":{features}}}}}}}"#
            )
        };
        assert!(Catalogue::from_json(&json(r#"{"sso":true}"#)).is_ok());
        assert!(matches!(Catalogue::from_json(&json("{}")), Err(CatalogueError::MissingFeature { .. })));
        assert!(matches!(
            Catalogue::from_json(&json(r#"{"sso":true,"fax":false}"#)),
            Err(CatalogueError::UnknownFeature { .. })
        ));
    }

    #[test]
    fn a_plan_missing_a_resource_is_rejected() {
        let json = r#"{"resources":{"a":{"kind":"total","unit":"a","names":{"en":"a","da":"a"}}},
            "plans":{"p":{"names":{"en":"P","da":"P"},"limits":{}}}}"#;
        assert!(matches!(Catalogue::from_json(json), Err(CatalogueError::MissingLimit { .. })));
    }
}
