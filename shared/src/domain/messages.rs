//! Localized texts shown to end users (English and Danish, from the seeds).

use super::catalogue::{Catalogue, ResourceKind};
use super::locale::Locale;
use super::usage::Reason;

/// The message that goes with a refusal; resource names from `catalogue`.
pub fn refusal(reason: Reason, resource: &str, kind: ResourceKind, locale: Locale, catalogue: &Catalogue) -> String {
    let name = catalogue.resource(resource).map_or(resource, |r| r.names.get(locale));
    match (reason, kind, locale) {
        (Reason::TrialExpired, _, Locale::En) => "Free trial expired. Upgrade to continue.".into(),
        (Reason::TrialExpired, _, Locale::Da) => "Gratis prøveperiode udløbet. Opgrader for at fortsætte.".into(),
        (Reason::QuotaExceeded, ResourceKind::Period, Locale::En) => {
            "Monthly quota reached. Upgrade to continue.".into()
        }
        (Reason::QuotaExceeded, ResourceKind::Period, Locale::Da) => {
            "Månedlig kvote nået. Opgrader for at fortsætte.".into()
        }
        (Reason::QuotaExceeded, ResourceKind::Total, Locale::En) => {
            format!("Limit for {name} reached. Upgrade to add more.")
        }
        (Reason::QuotaExceeded, ResourceKind::Total, Locale::Da) => {
            format!("Grænsen for {name} er nået. Opgrader for at tilføje flere.")
        }
    }
}
