//! Event categories: the grid's (which are also the Open311 services) and the alerts'.

use serde::{Deserialize, Serialize};

/// A category grid workers and citizens can report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Stable code, e.g. `illegal_parking`; the Open311 service_code.
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Open311 group, e.g. `traffic`.
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub keywords: String,
}

/// The grid categories SEED.md names, used when the config lists none.
pub fn defaults() -> Vec<Category> {
    let c = |code: &str, name: &str, group: &str, description: &str, keywords: &str| Category {
        code: code.into(),
        name: name.into(),
        description: description.into(),
        group: group.into(),
        keywords: keywords.into(),
    };
    vec![
        c(
            "illegal_parking",
            "Illegal parking",
            "traffic",
            "A vehicle parked where it obstructs or is not allowed",
            "parking,vehicle",
        ),
        c(
            "abandoned_vehicle",
            "Abandoned vehicle",
            "traffic",
            "A vehicle left unused in a public place",
            "vehicle,abandoned",
        ),
        c(
            "property_dispute",
            "Property management dispute",
            "disputes",
            "A dispute with or about property management",
            "property,management",
        ),
        c("neighbour_dispute", "Neighbour dispute", "disputes", "A dispute between neighbours", "neighbour,noise"),
        c(
            "hazard",
            "Hazard",
            "safety",
            "A danger to people or property: fallen tree, open manhole, damaged structure",
            "danger,safety",
        ),
        c("sanitation", "Sanitation", "environment", "Rubbish, dumping, dirty public spaces", "rubbish,waste,dumping"),
        c("other", "Other", "other", "Anything the other categories do not cover", ""),
    ]
}

/// Categories of events raised by the ingest rules; not reportable by people.
pub const ALERT_CATEGORIES: &[&str] = &[
    "watchlist_hit",
    "fence_warning",
    "fence_alert",
    "fence_recall",
    "camera_offline",
    "camera_signal_loss",
    "checkpoint_offline",
    "sanctions_hit",
];

/// Alert categories that say what was on a list: like `/api/v1/hits`, for operators and
/// auditors only.
pub const HIT_CATEGORIES: &[&str] = &["watchlist_hit", "sanctions_hit"];

/// The categories of events `role` may not read.
pub fn hidden_from(role: crate::workflow::Role) -> &'static [&'static str] {
    match role {
        crate::workflow::Role::GridWorker => HIT_CATEGORIES,
        crate::workflow::Role::Operator | crate::workflow::Role::Auditor => &[],
    }
}
