//! The patrol document: who patrolled which asset when, the GPS track as append-only compact
//! chunks, check-item results, notes, photos, the issues raised on the way and device flags.
//!
//! Root keys: `system`, `asset`, `chief`, `division`, `device`, `started_at`, `ended_at`,
//! `notes` (text), `checks` (map of item code → map {result, note, at}), `track` (list of
//! byte chunks, see `track`), `photos` (list of photo references), `issues` (list of issue ids),
//! `flags` (map of flag → bool). A patrol is edited by its chief's phone; supervisors read it.

use std::collections::BTreeMap;

use automerge::{
    transaction::Transactable, ActorId, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value,
    ROOT,
};
use serde::{Deserialize, Serialize};

use super::{init, load_kind, root_opt_i64, root_str, value, DocError, DocKind, Record};
use crate::model::{CheckResult, DivisionCode, PhotoRef, System, TrackPoint};
use crate::track;

/// What a phone knows when a chief starts a patrol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPatrol {
    pub system: System,
    pub asset: String,
    pub chief: String,
    pub division: DivisionCode,
    pub device: String,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckEntry {
    pub result: CheckResult,
    pub note: String,
    pub at_ms: i64,
}

/// A read-only snapshot of a patrol document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patrol {
    pub id: String,
    pub system: System,
    pub asset: String,
    pub chief: String,
    pub division: DivisionCode,
    pub device: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub notes: String,
    pub checks: BTreeMap<String, CheckEntry>,
    pub photos: Vec<PhotoRef>,
    pub issues: Vec<String>,
    pub flags: BTreeMap<String, bool>,
}

#[derive(Debug)]
pub struct PatrolDoc {
    doc: AutoCommit,
    id: String,
}

impl Record for PatrolDoc {
    fn am(&self) -> &AutoCommit {
        &self.doc
    }
    fn am_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }
}

impl PatrolDoc {
    /// Starts a new patrol document written by `actor`.
    pub fn create(actor: ActorId, new: &NewPatrol) -> Result<Self, DocError> {
        let id = super::new_doc_id();
        let mut doc = init(actor, DocKind::Patrol, &id)?;
        doc.put(ROOT, "system", new.system.as_str())?;
        doc.put(ROOT, "asset", new.asset.as_str())?;
        doc.put(ROOT, "chief", new.chief.as_str())?;
        doc.put(ROOT, "division", new.division.as_str())?;
        doc.put(ROOT, "device", new.device.as_str())?;
        doc.put(ROOT, "started_at", new.started_at_ms)?;
        doc.put_object(ROOT, "notes", ObjType::Text)?;
        doc.put_object(ROOT, "checks", ObjType::Map)?;
        doc.put_object(ROOT, "track", ObjType::List)?;
        doc.put_object(ROOT, "photos", ObjType::List)?;
        doc.put_object(ROOT, "issues", ObjType::List)?;
        doc.put_object(ROOT, "flags", ObjType::Map)?;
        Ok(Self { doc, id })
    }

    pub fn load(bytes: &[u8]) -> Result<Self, DocError> {
        Self::from_automerge(load_kind(bytes, DocKind::Patrol)?)
    }

    pub fn from_automerge(doc: AutoCommit) -> Result<Self, DocError> {
        let id = root_str(&doc, "id")?;
        Ok(Self { doc, id })
    }

    /// Continues editing with the actor bound to this device (after loading from bytes).
    pub fn with_actor(mut self, actor: ActorId) -> Self {
        self.doc.set_actor(actor);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn obj(&self, key: &str) -> Result<ObjId, DocError> {
        match self.doc.get(ROOT, key)? {
            Some((Value::Object(_), id)) => Ok(id),
            _ => Err(DocError::Schema(format!("patrol lacks {key}"))),
        }
    }

    /// Appends track points as compact chunks of at most [`track::CHUNK_POINTS`] each (the phone
    /// buffers [`track::CHANGE_POINTS`] fixes and appends them in one change).
    pub fn append_track(&mut self, points: &[TrackPoint]) -> Result<(), DocError> {
        if points.is_empty() {
            return Ok(());
        }
        let track = self.obj("track")?;
        for chunk in points.chunks(track::CHUNK_POINTS) {
            let index = self.doc.length(&track);
            self.doc.insert(
                &track,
                index,
                ScalarValue::Bytes(track::encode_chunk(chunk)),
            )?;
        }
        Ok(())
    }

    /// All track points, chunk after chunk.
    pub fn track(&self) -> Result<Vec<TrackPoint>, DocError> {
        let track = self.obj("track")?;
        let mut points = Vec::new();
        for index in 0..self.doc.length(&track) {
            match self.doc.get(&track, index)? {
                Some((Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Bytes(bytes) => points.extend(track::decode_chunk(bytes)?),
                    other => return Err(DocError::Schema(format!("track chunk is {other}"))),
                },
                _ => return Err(DocError::Schema("track chunk is not bytes".into())),
            }
        }
        Ok(points)
    }

    pub fn set_check_item(
        &mut self,
        code: &str,
        result: CheckResult,
        note: &str,
        at_ms: i64,
    ) -> Result<(), DocError> {
        let checks = self.obj("checks")?;
        let entry = match self.doc.get(&checks, code)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => self.doc.put_object(&checks, code, ObjType::Map)?,
        };
        self.doc.put(&entry, "result", result.as_str())?;
        self.doc.put(&entry, "note", note)?;
        self.doc.put(&entry, "at", at_ms)?;
        Ok(())
    }

    /// Replaces the notes; only the edited characters change, so edits made elsewhere survive.
    pub fn set_notes(&mut self, notes: &str) -> Result<(), DocError> {
        let obj = self.obj("notes")?;
        self.doc.update_text(&obj, notes)?;
        Ok(())
    }

    pub fn add_photo(&mut self, photo: &PhotoRef) -> Result<(), DocError> {
        let photos = self.obj("photos")?;
        value::push_record(&mut self.doc, &photos, photo)
    }

    pub fn add_issue(&mut self, issue_id: &str) -> Result<(), DocError> {
        let issues = self.obj("issues")?;
        let index = self.doc.length(&issues);
        self.doc.insert(&issues, index, issue_id)?;
        Ok(())
    }

    /// Records a device flag such as `mock_location` or `clock_skew`.
    pub fn set_flag(&mut self, flag: &str, on: bool) -> Result<(), DocError> {
        let flags = self.obj("flags")?;
        self.doc.put(&flags, flag, on)?;
        Ok(())
    }

    pub fn finish(&mut self, ended_at_ms: i64) -> Result<(), DocError> {
        self.doc.put(ROOT, "ended_at", ended_at_ms)?;
        Ok(())
    }

    pub fn view(&self) -> Result<Patrol, DocError> {
        let doc = &self.doc;
        let system = root_str(doc, "system")?;
        let division = root_str(doc, "division")?;
        let checks = match value::read_json(doc, &self.obj("checks")?)? {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(code, v)| {
                    let entry = CheckEntry {
                        result: v["result"]
                            .as_str()
                            .and_then(CheckResult::parse)
                            .ok_or_else(|| {
                                DocError::Schema(format!("check {code} lacks result"))
                            })?,
                        note: v["note"].as_str().unwrap_or_default().to_string(),
                        at_ms: v["at"].as_i64().unwrap_or_default(),
                    };
                    Ok((code, entry))
                })
                .collect::<Result<_, DocError>>()?,
            _ => return Err(DocError::Schema("checks is not a map".into())),
        };
        let flags = match value::read_json(doc, &self.obj("flags")?)? {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (k, v.as_bool().unwrap_or(false)))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(Patrol {
            id: self.id.clone(),
            system: System::parse(&system)
                .ok_or_else(|| DocError::Schema(format!("unknown system {system}")))?,
            asset: root_str(doc, "asset")?,
            chief: root_str(doc, "chief")?,
            division: DivisionCode::new(division).map_err(|e| DocError::Schema(e.to_string()))?,
            device: root_str(doc, "device")?,
            started_at_ms: root_opt_i64(doc, "started_at")?
                .ok_or_else(|| DocError::Schema("patrol lacks started_at".into()))?,
            ended_at_ms: root_opt_i64(doc, "ended_at")?,
            notes: doc.text(self.obj("notes")?)?,
            checks,
            photos: value::read_records(doc, &self.obj("photos")?)?,
            issues: value::read_records(doc, &self.obj("issues")?)?,
            flags,
        })
    }
}
