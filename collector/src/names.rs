//! Display names of scope keys: verdicts are keyed `AS131279` and `KP`,
//! people know "Star Joint Venture" and "North Korea".
//!
//! Names are a display-layer lookup by scope kind and key; they never
//! change how scopes are computed or stored. Country names come from ISO
//! 3166-1 (the `isocountry` crate), AS names from the configured AS names
//! file (`[correlation] as_names`, parsed by
//! `darkwatch_schema::inputs::asnames`). Campaigns, prefixes and blocks
//! have no name beyond their key.
//!
//! [`Names`] is the small shared holder of the loaded AS names: the API,
//! the alert senders and the correlation loop share one, and a reload of
//! the file swaps its contents ([`Names::replace`]) for all of them at
//! once. Lookups take a snapshot ([`Names::snapshot`]), so a reload never
//! shows half a file; [`name_of`] is the pure lookup behind it.

use std::sync::{Arc, RwLock};

use darkwatch_correlate::Scope;
use darkwatch_schema::inputs::asnames::AsNames;

use crate::reload::{Outcome, Reloading};

/// The ISO 3166-1 name of a two-letter country code (any case); `None`
/// for codes ISO does not assign (such as `XK`, used for Kosovo).
pub fn country_name(cc: &str) -> Option<&'static str> {
    isocountry::CountryCode::for_alpha2_caseless(cc)
        .ok()
        .map(|c| c.name())
}

/// The display name of scope `scope` keyed `target`, if it has one.
pub fn name_of(as_names: &AsNames, scope: Scope, target: &str) -> Option<String> {
    match scope {
        Scope::Country => country_name(target).map(str::to_string),
        Scope::Asn => {
            let n = target
                .strip_prefix("AS")
                .unwrap_or(target)
                .parse::<u32>()
                .ok()?;
            as_names.get(n).map(str::to_string)
        }
        _ => None,
    }
}

/// The AS names in use, shared by whoever shows names. Cheap to clone;
/// all clones see a [`Names::replace`].
#[derive(Debug, Clone, Default)]
pub struct Names {
    as_names: Arc<RwLock<Arc<AsNames>>>,
}

impl Names {
    pub fn new(as_names: AsNames) -> Self {
        Names {
            as_names: Arc::new(RwLock::new(Arc::new(as_names))),
        }
    }

    /// Swaps in a newly loaded file's names for every holder.
    pub fn replace(&self, as_names: AsNames) {
        self.replace_shared(Arc::new(as_names));
    }

    fn replace_shared(&self, as_names: Arc<AsNames>) {
        let mut g = self.as_names.write().unwrap_or_else(|p| p.into_inner());
        *g = as_names;
    }

    /// Reads `file` again if it changed and swaps in its names; a refused
    /// file keeps the names before. `serve` calls it every minute (AS
    /// names are republished like pfx2as); the outcome is for counting.
    pub fn follow(&self, file: &Reloading<AsNames>) -> Outcome {
        let outcome = file.check();
        if let Outcome::Loaded { .. } = outcome {
            self.replace_shared(file.current().0);
        }
        outcome
    }

    /// The names as they are now, unaffected by a later reload.
    pub fn snapshot(&self) -> Arc<AsNames> {
        self.as_names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The display name of a scope key (see [`name_of`]).
    pub fn of(&self, scope: Scope, target: &str) -> Option<String> {
        name_of(&self.snapshot(), scope, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> AsNames {
        [(131279, "Star Joint Venture".to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn countries_have_iso_names_and_ases_their_file_names() {
        let n = names();
        assert_eq!(
            name_of(&n, Scope::Country, "KP").as_deref(),
            Some("Korea (Democratic People's Republic of)")
        );
        assert_eq!(
            name_of(&n, Scope::Country, "us").as_deref(),
            Some("United States of America")
        );
        // Not assigned by ISO: the code alone.
        assert_eq!(name_of(&n, Scope::Country, "XK"), None);
        assert_eq!(
            name_of(&n, Scope::Asn, "AS131279").as_deref(),
            Some("Star Joint Venture")
        );
        assert_eq!(name_of(&n, Scope::Asn, "AS64500"), None);
        assert_eq!(name_of(&n, Scope::Prefix, "175.45.176.0/24"), None);
        assert_eq!(name_of(&n, Scope::Campaign, "KP"), None);
    }

    #[test]
    fn a_replace_is_seen_by_every_clone_but_not_by_a_snapshot() {
        let a = Names::default();
        let b = a.clone();
        let before = a.snapshot();
        assert_eq!(b.of(Scope::Asn, "AS131279"), None);
        a.replace(names());
        assert_eq!(
            b.of(Scope::Asn, "AS131279").as_deref(),
            Some("Star Joint Venture")
        );
        assert!(before.is_empty());
    }

    #[test]
    fn a_changed_file_renames_for_every_holder_and_a_bad_one_keeps_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asnames.txt");
        std::fs::write(&path, "131279 Star Joint Venture\n").unwrap();
        let file = Reloading::open(&path, "as_names", crate::inputs::parse_as_names).unwrap();
        let names = Names::new(AsNames::clone(&file.current().0));
        let api = names.clone();
        assert_eq!(names.follow(&file), Outcome::Unchanged);

        // Republished (another size, so the change shows within the file
        // system's time resolution): every clone sees the new name.
        std::fs::write(&path, "131279 Star JV Co. Ltd.\n64500 Example\n").unwrap();
        assert!(matches!(names.follow(&file), Outcome::Loaded { .. }));
        assert_eq!(
            api.of(Scope::Asn, "AS131279").as_deref(),
            Some("Star JV Co. Ltd.")
        );

        // Broken: refused, the names before stay.
        std::fs::write(&path, "not a name list at all\n").unwrap();
        assert!(matches!(names.follow(&file), Outcome::Kept { .. }));
        assert_eq!(api.of(Scope::Asn, "AS64500").as_deref(), Some("Example"));
    }
}
