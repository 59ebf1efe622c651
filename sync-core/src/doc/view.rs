//! A document's readable form, the same on the phone and the server: the record, what is
//! derived from it (workflow state, track measures), and its heads.

use serde::{Deserialize, Serialize};

use super::{DocError, DocKind, Issue, IssueDoc, Patrol, PatrolDoc};
use crate::model::TrackPoint;
use crate::track::{self, TrackStats};
use crate::workflow::IssueState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocView {
    Patrol {
        heads: Vec<String>,
        record: Patrol,
        track_stats: TrackStats,
        track: Vec<TrackPoint>,
    },
    Issue {
        heads: Vec<String>,
        record: Issue,
        state: IssueState,
    },
}

impl DocView {
    /// Reads saved document bytes of either kind.
    pub fn of_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        let (mut doc, header) = super::load(bytes)?;
        let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        Ok(match header.kind {
            DocKind::Patrol => {
                let patrol = PatrolDoc::load(bytes)?;
                let points = patrol.track()?;
                DocView::Patrol {
                    heads,
                    record: patrol.view()?,
                    track_stats: track::stats(&points),
                    track: points,
                }
            }
            DocKind::Issue => {
                let issue = IssueDoc::load(bytes)?;
                DocView::Issue {
                    heads,
                    record: issue.view()?,
                    state: issue.state()?,
                }
            }
        })
    }
}
