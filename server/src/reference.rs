//! The reference data a device needs for its user: divisions, assets with geometry, problem
//! categories, check items and patrol rules — scoped by role:
//!
//! - a chief: the divisions inside its jurisdiction (and their ancestors, for names), the
//!   assets it is assigned plus those of its system inside its jurisdiction;
//! - a supervisor: its system's assets inside its division;
//! - an admin or a department handler (who may be assigned problems anywhere): everything.
//!
//! Categories and check items are those of the user's system when it has one. Categories, check
//! items and rules are server-owned settings, read by `crate::settings` (absent ones are
//! sync-core's defaults, damaged ones an error). This module decides scope; it does not serve
//! HTTP. The shape it fills is `sync_core::api_types::ReferenceData`, the type the phone reads.

use std::collections::{BTreeMap, BTreeSet};

pub use sync_core::api_types::ReferenceData;
use sync_core::model::{Asset, Category, CheckItem, Division, DivisionCode, Role, System, User};

pub use crate::settings::{categories, seed_defaults, CATEGORIES_KEY, CHECK_ITEMS_KEY, RULES_KEY};
use crate::settings::{check_items, patrol_rules};
use crate::storage::{Store, StoreError};

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
    let check_items = check_items(store)?
        .into_iter()
        .filter(|c: &CheckItem| system.is_none_or(|s| s == c.system))
        .collect();
    Ok(ReferenceData {
        divisions,
        assets,
        categories,
        check_items,
        rules: patrol_rules(store)?,
    })
}
