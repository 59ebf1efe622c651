//! The Tianqiao demo, seeded by `--demo` on first start only: divisions, river segments,
//! forests and farmland grids, categories, check items and patrol rules, and the demo accounts
//! (password `demo`).
//!
//! A marker in the store records that seeding finished; later starts find it and seed nothing.
//! Every item has a fixed id and is skipped if already present, so a start interrupted midway
//! completes the seed on the next start without duplicates. [`facts`] returns what was seeded
//! (users, divisions, assets) for code that builds sample documents on top of it.

mod district;
mod documents;
mod people;
mod photos;
mod places;

pub use people::{
    user_id, DemoPerson, ADMIN, CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF, HANDLER,
    LOGIN_USERNAMES, SUPERVISOR,
};

use sync_core::model::{Asset, Division, User};

use crate::reference;
use crate::state::{now_ms, AppState};
use crate::storage::{StoreError, UserRecord};

/// Meta key of the marker written when seeding finished.
pub const SEEDED_MARKER: &str = "demo.seeded";
/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hashing the demo password: {0}")]
    Password(String),
    #[error("building the demo documents: {0}")]
    Document(#[from] sync_core::doc::DocError),
    #[error(transparent)]
    Hub(#[from] sync_core::hub::HubError),
    #[error("storing a demo photo: {0}")]
    Photo(String),
}

/// Everything the demo seeds, by fixed ids.
#[derive(Debug, Clone)]
pub struct DemoFacts {
    pub people: Vec<DemoPerson>,
    pub divisions: Vec<Division>,
    pub assets: Vec<Asset>,
}

impl DemoFacts {
    pub fn user(&self, username: &str) -> Option<&User> {
        self.people
            .iter()
            .map(|p| &p.user)
            .find(|u| u.username == username)
    }

    pub fn asset(&self, id: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.id == id)
    }
}

pub fn facts() -> DemoFacts {
    DemoFacts {
        people: people::people(),
        divisions: places::divisions(),
        assets: places::assets(),
    }
}

/// How much of the demo to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoSize {
    /// The demo accounts, places, three weeks of their patrols and ten river issues (photos
    /// named but never uploaded): what most tests start from, seeded in well under a second.
    #[default]
    Small,
    /// Small plus a district's worth (what `--demo` seeds): a chief for every other river
    /// segment, forest and farmland grid with eight weeks of patrols, the forest and field
    /// offices and departments, sixty more issues across all systems and states, and painted
    /// before and after photos with EXIF time and position for every issue.
    District,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    Seeded,
    AlreadySeeded,
}

/// Seeds the small demo unless the marker says it was seeded before.
pub fn seed(state: &AppState) -> Result<SeedOutcome, DemoError> {
    seed_sized(state, DemoSize::Small)
}

/// Seeds the demo of `size` unless the marker says it was seeded before.
pub fn seed_sized(state: &AppState, size: DemoSize) -> Result<SeedOutcome, DemoError> {
    let store = &state.store;
    if store.get_meta(SEEDED_MARKER)?.is_some() {
        tracing::info!("demo data already present; nothing seeded");
        return Ok(SeedOutcome::AlreadySeeded);
    }
    let mut facts = facts();
    let now = now_ms();
    let generated = match size {
        DemoSize::Small => Vec::new(),
        DemoSize::District => district::people(&facts),
    };
    for division in &facts.divisions {
        if store.get_division(&division.code)?.is_none() {
            store.put_division(division)?;
        }
    }
    for asset in &facts.assets {
        if store.get_asset(&asset.id)?.is_none() {
            store.put_asset(asset)?;
        }
    }
    reference::seed_defaults(store.as_ref())?;
    // The supervision phone numbers printed on the demo's signboards (made-up numbers).
    for (system, phone) in [
        (sync_core::model::System::River, "0531-85901369"),
        (sync_core::model::System::Forest, "0531-85901370"),
        (sync_core::model::System::Field, "0531-85901371"),
    ] {
        crate::public::cases::set_supervision_phone(store.as_ref(), system, phone)?;
    }
    // One hash shared by all demo accounts: the password is public anyway, and hashing it once
    // keeps the first start quick even in debug builds.
    let hash = state
        .passwords
        .hash(DEMO_PASSWORD)
        .map_err(|e| DemoError::Password(e.to_string()))?;
    for person in facts.people.iter().chain(&generated) {
        if store.get_user(&person.user.id)?.is_none() {
            store.create_user(&UserRecord {
                user: person.user.clone(),
                password_hash: person.can_log_in.then(|| hash.clone()),
                created_at_ms: now,
                updated_at_ms: now,
            })?;
        }
    }
    let mut painted = Vec::new();
    let mut documents = match size {
        DemoSize::Small => documents::build(&facts, now, None)?,
        DemoSize::District => documents::build(&facts, now, Some(&mut painted))?,
    };
    if size == DemoSize::District {
        documents.extend(district::build(&facts, &generated, now, &mut painted)?);
        facts.people.extend(generated);
    }
    for photo in &painted {
        let key = crate::blobs::UploadKey {
            sha256: photo.photo_ref.sha256.clone(),
            user: photo.uploader.clone(),
        };
        state
            .blobs
            .put_whole(&key, &photo.jpeg, now, false)
            .map_err(|e| DemoError::Photo(e.to_string()))?;
    }
    for document in &documents {
        let doc = automerge::AutoCommit::load(&document.bytes)
            .map_err(|e| sync_core::doc::DocError::Schema(e.to_string()))?;
        let meta = sync_core::authz::DocMeta::of(&doc)?;
        store.save_document(&document.id, &meta, &document.bytes, &[])?;
    }
    store.put_meta(SEEDED_MARKER, now.to_string().as_bytes())?;
    tracing::info!(
        divisions = facts.divisions.len(),
        assets = facts.assets.len(),
        people = facts.people.len(),
        documents = documents.len(),
        photos = painted.len(),
        "seeded the Tianqiao demo"
    );
    Ok(SeedOutcome::Seeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use sync_core::geo::check_geometry;
    use sync_core::model::{Geometry, Role};

    #[test]
    fn demo_data_is_consistent() {
        let facts = facts();
        let codes: HashSet<_> = facts.divisions.iter().map(|d| d.code.clone()).collect();
        assert_eq!(facts.divisions.len(), 1 + 14 + 8);
        for d in &facts.divisions {
            if let Some(parent) = &d.parent {
                assert!(codes.contains(parent) && parent.contains(&d.code), "{d:?}");
            }
        }
        for a in &facts.assets {
            assert!(codes.contains(&a.division), "{}", a.id);
            check_geometry(&a.geometry).unwrap_or_else(|e| panic!("{}: {e}", a.id));
            let points: Vec<[f64; 2]> = match &a.geometry {
                Geometry::LineString(line) => line.clone(),
                Geometry::Polygon(rings) => rings.concat(),
            };
            for [lon, lat] in points {
                assert!(
                    (116.90..=117.06).contains(&lon) && (36.66..=36.86).contains(&lat),
                    "{}",
                    a.id
                );
            }
        }
        let river_segments = facts
            .assets
            .iter()
            .filter(|a| a.id.starts_with("river-"))
            .count();
        assert!(river_segments >= 14, "{river_segments}");
        for name in LOGIN_USERNAMES {
            assert!(facts.user(name).is_some(), "{name}");
        }
        for person in &facts.people {
            if let Role::Chief {
                system,
                level,
                jurisdiction,
            } = &person.user.role
            {
                assert_eq!(
                    jurisdiction.division.level(),
                    *level,
                    "{}",
                    person.user.username
                );
                for id in &jurisdiction.assets {
                    let asset = facts.asset(id).unwrap_or_else(|| panic!("{id}"));
                    assert_eq!(asset.system, *system, "{id}");
                }
            }
        }
        let chief_assets = |name: &str| match &facts.user(name).unwrap().role {
            Role::Chief { jurisdiction, .. } => jurisdiction.assets.clone(),
            _ => panic!("{name} is a chief"),
        };
        let (a, b) = (chief_assets(CHIEF), chief_assets(CHIEF_2));
        assert!(
            a.iter().all(|x| !b.contains(x)),
            "the two village chiefs patrol different segments"
        );
    }
}
