//! Where a new record says it is must agree with the reference data: the asset it names exists
//! and is of the record's system, the record's division is the asset's, an issue's category is
//! one of that system's, and the place an issue was reported is near the asset. Without this a
//! chief could file on their own river segment with another district's division code, and the
//! problem would land on that district's board, statistics and escalation.
//!
//! Placement is fixed when a record is created (the schema keeps these fields), so it is
//! checked once, on the change that creates the document.

use automerge::AutoCommit;

use super::Refusal;
use crate::doc::{self, DocError, DocKind, IssueDoc, PatrolDoc};
use crate::geo;
use crate::model::{Asset, Category, DivisionCode, System};

/// How far from its asset (the river line, or outside the forest area or farmland grid) a
/// problem may be reported. Reports are made on foot along the asset, with phone GPS; a
/// kilometre covers the bank, a bridge approach and a poor fix.
pub const MAX_REPORT_DISTANCE_M: f64 = 1_000.0;

/// The placement fields of a new record.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub kind: DocKind,
    pub system: System,
    pub asset: String,
    pub division: DivisionCode,
    /// Issues only.
    pub category: Option<String>,
    /// Issues only: `[lon, lat]`.
    pub location: Option<[f64; 2]>,
}

impl Placement {
    /// Reads the placement fields of a patrol or issue document.
    pub fn of(doc: &AutoCommit) -> Result<Placement, DocError> {
        let header = doc::header(doc)?;
        Ok(match header.kind {
            DocKind::Patrol => {
                let patrol = PatrolDoc::from_automerge(doc.clone())?.view()?;
                Placement {
                    kind: DocKind::Patrol,
                    system: patrol.system,
                    asset: patrol.asset,
                    division: patrol.division,
                    category: None,
                    location: None,
                }
            }
            DocKind::Issue => {
                let issue = IssueDoc::from_automerge(doc.clone())?.view()?;
                Placement {
                    kind: DocKind::Issue,
                    system: issue.system,
                    asset: issue.asset,
                    division: issue.division,
                    category: Some(issue.category),
                    location: Some(issue.location),
                }
            }
        })
    }
}

/// Whether `code` is one of the problem categories of `system` (an asset's system) in the
/// reference data's `categories`. The server refuses a new issue that fails it, and the phone
/// asks the same before it records a report, so a chief is told at once rather than finding
/// the report refused at the next sync.
pub fn check_category(code: &str, system: System, categories: &[Category]) -> Result<(), Refusal> {
    match categories.iter().find(|c| c.code == code) {
        None => Err(Refusal::Misplaced(format!(
            "there is no problem category {code}"
        ))),
        Some(c) if c.system != system => Err(Refusal::Misplaced(format!(
            "category {code} belongs to the {} system, the asset to {system}",
            c.system
        ))),
        Some(_) => Ok(()),
    }
}

/// Whether `placement` agrees with `asset` (the reference data's asset of that id, `None` when
/// there is none) and the reference data's `categories`.
pub fn check_placement(
    placement: &Placement,
    asset: Option<&Asset>,
    categories: &[Category],
) -> Result<(), Refusal> {
    let misplaced = |why: String| Err(Refusal::Misplaced(why));
    let Some(asset) = asset else {
        return misplaced(format!("there is no asset {}", placement.asset));
    };
    if asset.system != placement.system {
        return misplaced(format!(
            "asset {} is a {} asset, not {}",
            asset.id, asset.system, placement.system
        ));
    }
    if asset.division != placement.division {
        return misplaced(format!(
            "asset {} lies in division {}, not {}",
            asset.id, asset.division, placement.division
        ));
    }
    if let Some(code) = &placement.category {
        check_category(code, asset.system, categories)?;
    }
    if let Some([lon, lat]) = placement.location {
        let away = geo::distance_to_geometry_m(lat, lon, &asset.geometry);
        if !away.is_finite() || away > MAX_REPORT_DISTANCE_M {
            return misplaced(format!(
                "reported {away:.0} m from asset {}, more than {MAX_REPORT_DISTANCE_M:.0} m",
                asset.id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(code: &str, system: System) -> Category {
        Category {
            code: code.into(),
            system,
            name_zh: code.into(),
            name_en: code.into(),
        }
    }

    #[test]
    fn a_category_must_exist_and_belong_to_the_assets_system() {
        let categories = [
            category("river.garbage", System::River),
            category("forest.fire_hazard", System::Forest),
        ];
        assert_eq!(
            check_category("river.garbage", System::River, &categories),
            Ok(())
        );
        let Err(Refusal::Misplaced(why)) =
            check_category("forest.fire_hazard", System::River, &categories)
        else {
            panic!("a forest category on a river asset was accepted");
        };
        assert!(why.contains("forest"), "{why}");
        assert!(check_category("river.made-up", System::River, &categories).is_err());
    }
}
