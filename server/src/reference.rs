//! The reference data a device needs for its user: divisions, assets with geometry, problem
//! categories, check items and patrol rules — scoped by role:
//!
//! - a chief: the divisions inside its jurisdiction (and their ancestors, for names), the
//!   assets it is assigned plus those of its system inside its jurisdiction;
//! - a supervisor: its system's assets inside its division;
//! - an admin or a department handler (who may be assigned problems anywhere): everything.
//!
//! Categories and check items are those of the user's system when it has one. Categories, check
//! items and rules are server-owned settings stored in meta and fall back to sync-core's
//! defaults. This module decides scope; it does not serve HTTP.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sync_core::model::{
    default_categories, default_check_items, Asset, Category, CheckItem, Division, DivisionCode,
    Role, System, User,
};
use sync_core::rules::RuleSet;
use utoipa::ToSchema;

use crate::storage::{Store, StoreError};

pub const CATEGORIES_KEY: &str = "reference.categories";
pub const CHECK_ITEMS_KEY: &str = "reference.check_items";
pub const RULES_KEY: &str = "reference.rules";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferenceData {
    #[schema(value_type = Vec<Object>)]
    pub divisions: Vec<Division>,
    /// Assets with GeoJSON geometry.
    #[schema(value_type = Vec<Object>)]
    pub assets: Vec<Asset>,
    #[schema(value_type = Vec<Object>)]
    pub categories: Vec<Category>,
    #[schema(value_type = Vec<Object>)]
    pub check_items: Vec<CheckItem>,
    #[schema(value_type = Object)]
    pub rules: RuleSet,
}

fn setting<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    default: impl FnOnce() -> T,
) -> Result<T, StoreError> {
    match store.get_meta(key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            detail: e.to_string(),
        }),
        None => Ok(default()),
    }
}

fn put_setting_if_absent<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    if store.get_meta(key)?.is_none() {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
        store.put_meta(key, &bytes)?;
    }
    Ok(())
}

/// Stores sync-core's default categories, check items and rules as this server's settings.
pub fn seed_defaults(store: &dyn Store) -> Result<(), StoreError> {
    put_setting_if_absent(store, CATEGORIES_KEY, &default_categories())?;
    put_setting_if_absent(store, CHECK_ITEMS_KEY, &default_check_items())?;
    put_setting_if_absent(store, RULES_KEY, &RuleSet::default())
}

/// The problem categories in force: the stored setting, or sync-core's defaults.
pub fn categories(store: &dyn Store) -> Result<Vec<Category>, StoreError> {
    setting(store, CATEGORIES_KEY, default_categories)
}

/// (area the user sees, system filter, explicitly assigned assets); `None` area means everywhere.
fn scope_of(role: &Role) -> (Option<&DivisionCode>, Option<System>, &[String]) {
    match role {
        Role::Chief {
            system,
            jurisdiction,
            ..
        } => (
            Some(&jurisdiction.division),
            Some(*system),
            &jurisdiction.assets,
        ),
        Role::Supervisor { system, division } => (Some(division), Some(*system), &[]),
        Role::Handler { .. } | Role::Admin => (None, None, &[]),
    }
}

pub fn for_user(store: &dyn Store, user: &User) -> Result<ReferenceData, StoreError> {
    let (area, system, assigned) = scope_of(&user.role);
    let in_area = |code: &DivisionCode| area.is_none_or(|a| a.contains(code));
    let assets: Vec<Asset> = store
        .list_assets()?
        .into_iter()
        .filter(|a| {
            assigned.contains(&a.id)
                || (in_area(&a.division) && system.is_none_or(|s| s == a.system))
        })
        .collect();

    let all_divisions: BTreeMap<DivisionCode, Division> = store
        .list_divisions()?
        .into_iter()
        .map(|d| (d.code.clone(), d))
        .collect();
    let mut wanted: BTreeSet<DivisionCode> = all_divisions
        .keys()
        .filter(|code| in_area(code))
        .cloned()
        .collect();
    wanted.extend(assets.iter().map(|a| a.division.clone()));
    wanted.extend(area.cloned());
    // Ancestors too, so a device can show "桑梓店街道 › 小寨村" without asking again.
    let mut pending: Vec<DivisionCode> = wanted.iter().cloned().collect();
    while let Some(code) = pending.pop() {
        if let Some(parent) = all_divisions.get(&code).and_then(|d| d.parent.clone()) {
            if wanted.insert(parent.clone()) {
                pending.push(parent);
            }
        }
    }
    let divisions = wanted
        .iter()
        .filter_map(|code| all_divisions.get(code).cloned())
        .collect();

    let categories = categories(store)?
        .into_iter()
        .filter(|c: &Category| system.is_none_or(|s| s == c.system))
        .collect();
    let check_items = setting(store, CHECK_ITEMS_KEY, default_check_items)?
        .into_iter()
        .filter(|c: &CheckItem| system.is_none_or(|s| s == c.system))
        .collect();
    Ok(ReferenceData {
        divisions,
        assets,
        categories,
        check_items,
        rules: setting(store, RULES_KEY, RuleSet::default)?,
    })
}
