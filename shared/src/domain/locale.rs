//! The languages the service speaks to end users: English and Danish.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Da,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Da => "da",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Locale::En),
            "da" => Some(Locale::Da),
            _ => None,
        }
    }
}
