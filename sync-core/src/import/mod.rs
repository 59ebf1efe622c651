//! What an office imports to set up its district — the chief roster (河长名录), asset boundaries
//! and division code lists — checked row by row before anything is stored.
//!
//! Each `plan_*` function compares the rows with what is on record and says, per row, what
//! applying would do: create, change (with before and after), leave unchanged, or refuse with
//! the reasons in the office's words. A plan with any refused row is not applied at all; a plan
//! of a file already imported is all unchanged. Parsing the files (XLSX, CSV, GeoJSON) and
//! storing the outcome are the server's; the rules live here.

pub mod assets;
pub mod coords;
pub mod divisions;
pub mod roster;

use serde::{Deserialize, Serialize};

/// What applying one row would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome<T> {
    Create { after: T },
    Change { before: T, after: T },
    Unchanged,
    Refused { reasons: Vec<String> },
}

impl<T> Outcome<T> {
    pub fn is_refused(&self) -> bool {
        matches!(self, Outcome::Refused { .. })
    }
}

/// One row of a plan: its number in the file (a spreadsheet's row number, header counted, or
/// a feature's position from 1), what it names, and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow<T> {
    pub row: usize,
    pub label: String,
    #[serde(flatten)]
    pub outcome: Outcome<T>,
    /// Not a refusal: something the office should look at (an asset far from the patrols).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warning: Option<String>,
}

/// Counts of a plan, for the desk's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub warnings: usize,
}

pub fn summarize<T>(rows: &[PlanRow<T>]) -> Summary {
    let mut s = Summary::default();
    for r in rows {
        match r.outcome {
            Outcome::Create { .. } => s.create += 1,
            Outcome::Change { .. } => s.change += 1,
            Outcome::Unchanged => s.unchanged += 1,
            Outcome::Refused { .. } => s.refused += 1,
        }
        if r.warning.is_some() {
            s.warnings += 1;
        }
    }
    s
}

/// Splits a cell listing several names (、，,；; or new lines), trimming and dropping blanks.
pub fn split_names(cell: &str) -> Vec<String> {
    cell.split(['、', '，', ',', '；', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
