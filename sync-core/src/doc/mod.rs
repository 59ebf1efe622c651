//! One automerge document per patrol and per issue, with a versioned schema.
//!
//! Every document's root map holds `schema` (the version it was written with), `kind` and `id`;
//! the rest is kind-specific (see `patrol` and `issue`). Fields edited by people are separate
//! keys of maps, so concurrent offline edits merge field by field; tracks, photos and workflow
//! events are append-only lists.
//!
//! ```
//! use sync_core::doc::{actor_for, IssueDoc, NewIssue, Record};
//! use sync_core::model::{DivisionCode, Jurisdiction, Level, Role, Severity, System, User};
//! use sync_core::workflow::Status;
//!
//! let village = DivisionCode::new("370105014201").unwrap();
//! let chief = User {
//!     id: "u-chief".into(),
//!     username: "demo-chief".into(),
//!     display_name: "小寨村河长".into(),
//!     role: Role::Chief {
//!         system: System::River,
//!         level: Level::Village,
//!         jurisdiction: Jurisdiction { division: village.clone(), assets: vec!["xqh-01".into()] },
//!     },
//!     active: true,
//! };
//! let new = NewIssue {
//!     system: System::River,
//!     category: "river.garbage".into(),
//!     severity: Severity::General,
//!     asset: "xqh-01".into(),
//!     division: village,
//!     location: [116.98, 36.72],
//!     description: "河面漂浮垃圾".into(),
//!     patrol: None,
//! };
//! let mut phone = IssueDoc::report(actor_for(1), &chief, "phone-1", 1_700_000_000_000, &new).unwrap();
//! let mut server = IssueDoc::load(&phone.save()).unwrap().with_actor(actor_for(2));
//! phone.set_description("河面漂浮垃圾约20平方米").unwrap();
//! server.merge(&mut phone).unwrap();
//! assert_eq!(server.view().unwrap().description, "河面漂浮垃圾约20平方米");
//! assert_eq!(server.state().unwrap().status, Some(Status::Reported));
//! ```
//! This module does no I/O; the device's store and the server keep the bytes.

mod issue;
mod patrol;
mod value;
mod view;

pub use issue::{Appended, Issue, IssueDoc, NewIssue};
pub use patrol::{CheckEntry, NewPatrol, Patrol, PatrolDoc};
pub use view::DocView;

use automerge::{
    ActorId, AutoCommit, AutomergeError, ChangeHash, ReadDoc, ScalarValue, Value, ROOT,
};
use serde::{Deserialize, Serialize};

/// The schema version this build writes. Documents with a higher version are refused rather than
/// misread; older versions are read by the code paths that still understand them.
pub const SCHEMA_VERSION: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Patrol,
    Issue,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Patrol => "patrol",
            DocKind::Issue => "issue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DocKind::Patrol, DocKind::Issue]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
    #[error("document is a {found}, expected a {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("document schema {found} is newer than this build understands ({SCHEMA_VERSION})")]
    UnsupportedSchema { found: u64 },
    #[error("document does not follow the schema: {0}")]
    Schema(String),
    #[error("track: {0}")]
    Track(#[from] crate::track::TrackError),
    #[error(transparent)]
    Transition(#[from] crate::workflow::TransitionError),
    #[error("invalid actor id: {0}")]
    Actor(String),
}

/// A new document id: a UUIDv7, so ids sort by creation time.
pub fn new_doc_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Parses the actor id the server bound to this (user, device) at login.
pub fn parse_actor(hex: &str) -> Result<ActorId, DocError> {
    match ActorId::try_from(hex) {
        Ok(actor) if !actor.to_bytes().is_empty() => Ok(actor),
        _ => Err(DocError::Actor(hex.to_string())),
    }
}

/// The kind, id and schema of any ChiefSync document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: DocKind,
    pub id: String,
    pub schema: u64,
}

/// Reads and checks the header of a loaded document.
pub fn header(doc: &AutoCommit) -> Result<Header, DocError> {
    let schema = match root_scalar(doc, "schema")? {
        Some(ScalarValue::Uint(v)) => v,
        Some(ScalarValue::Int(v)) if v >= 0 => v as u64,
        _ => return Err(DocError::Schema("missing schema version".into())),
    };
    if schema > SCHEMA_VERSION {
        return Err(DocError::UnsupportedSchema { found: schema });
    }
    let kind = root_str(doc, "kind")?;
    let kind = DocKind::parse(&kind).ok_or(DocError::WrongKind {
        expected: "patrol or issue",
        found: kind,
    })?;
    Ok(Header {
        kind,
        id: root_str(doc, "id")?,
        schema,
    })
}

/// Loads bytes (a save, or a save followed by incremental saves) and checks the header.
pub fn load(bytes: &[u8]) -> Result<(AutoCommit, Header), DocError> {
    let doc = AutoCommit::load(bytes)?;
    let header = header(&doc)?;
    Ok((doc, header))
}

fn load_kind(bytes: &[u8], kind: DocKind) -> Result<AutoCommit, DocError> {
    let (doc, header) = load(bytes)?;
    if header.kind != kind {
        return Err(DocError::WrongKind {
            expected: kind.as_str(),
            found: header.kind.as_str().into(),
        });
    }
    Ok(doc)
}

fn init(actor: ActorId, kind: DocKind, id: &str) -> Result<AutoCommit, DocError> {
    let mut doc = AutoCommit::new().with_actor(actor);
    use automerge::transaction::Transactable;
    doc.put(ROOT, "schema", ScalarValue::Uint(SCHEMA_VERSION))?;
    doc.put(ROOT, "kind", kind.as_str())?;
    doc.put(ROOT, "id", id)?;
    Ok(doc)
}

pub(crate) fn root_scalar(doc: &AutoCommit, key: &str) -> Result<Option<ScalarValue>, DocError> {
    Ok(match doc.get(ROOT, key)? {
        Some((Value::Scalar(s), _)) => Some(s.into_owned()),
        _ => None,
    })
}

pub(crate) fn root_str(doc: &AutoCommit, key: &str) -> Result<String, DocError> {
    match root_scalar(doc, key)? {
        Some(ScalarValue::Str(s)) => Ok(s.to_string()),
        _ => Err(DocError::Schema(format!("missing text field {key}"))),
    }
}

pub(crate) fn root_opt_i64(doc: &AutoCommit, key: &str) -> Result<Option<i64>, DocError> {
    match root_scalar(doc, key)? {
        Some(ScalarValue::Int(v)) | Some(ScalarValue::Timestamp(v)) => Ok(Some(v)),
        Some(ScalarValue::Null) | None => Ok(None),
        Some(other) => Err(DocError::Schema(format!("{key} is not a time: {other}"))),
    }
}

/// Operations every ChiefSync document offers, whatever its kind.
pub trait Record {
    fn am(&self) -> &AutoCommit;
    fn am_mut(&mut self) -> &mut AutoCommit;

    fn save(&mut self) -> Vec<u8> {
        self.am_mut().save()
    }

    /// The changes made since the previous incremental save, for the device's store.
    fn save_incremental(&mut self) -> Vec<u8> {
        self.am_mut().save_incremental()
    }

    fn heads(&mut self) -> Vec<ChangeHash> {
        self.am_mut().get_heads()
    }

    fn merge(&mut self, other: &mut Self) -> Result<(), DocError>
    where
        Self: Sized,
    {
        self.am_mut().merge(other.am_mut())?;
        Ok(())
    }
}

/// A stable actor id for tests, examples and the demo: `n` in the last bytes.
pub fn actor_for(n: u64) -> ActorId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes[0] = 0xc5;
    ActorId::from(bytes)
}
