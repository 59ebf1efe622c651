//! What a well-formed document looks like to the server, and what one change did to it.
//!
//! Every root key of a patrol and of an issue has one rule: a header field is written when the
//! document is created and never again; an edited field may change (who may change it is
//! decided in `change`); an append-only list only grows at its end. Containers (text, maps,
//! lists) must never be replaced by new objects, or edits made concurrently to the old object
//! would silently vanish. Documents are compared through automerge's hydrated values, which
//! also show conflicts, so a hidden concurrent write to a fixed field counts as a change.
//!
//! This module judges shapes only; it knows nothing of users.

use std::collections::HashMap;
use std::ops::Range;

use automerge::hydrate::{self, MapValue};
use automerge::{AutoCommit, ObjId, ReadDoc, ScalarValue, ValueRef, ROOT};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Number, Value as Json};

use super::Refusal;
use crate::doc::{self, DocError, DocKind, Issue, IssueDoc, Patrol, PatrolDoc, Record};
use crate::model::PhotoRef;
use crate::track;
use crate::workflow::{Event, Receipt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Header,
    Edited,
    Appended(Element),
    /// Written by the server alone (the issue's receipts): no device change may touch it.
    Server,
}

/// What each append-only list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    TrackChunk,
    Photo,
    IssueId,
    Event,
}

/// The root keys of a patrol (see `doc::patrol`).
const PATROL: &[(&str, Rule)] = &[
    ("schema", Rule::Header),
    ("kind", Rule::Header),
    ("id", Rule::Header),
    ("system", Rule::Header),
    ("asset", Rule::Header),
    ("chief", Rule::Header),
    ("division", Rule::Header),
    ("device", Rule::Header),
    ("started_at", Rule::Header),
    ("ended_at", Rule::Edited),
    ("notes", Rule::Edited),
    ("checks", Rule::Edited),
    ("flags", Rule::Edited),
    ("track", Rule::Appended(Element::TrackChunk)),
    ("photos", Rule::Appended(Element::Photo)),
    ("issues", Rule::Appended(Element::IssueId)),
];

/// The root keys of an issue (see `doc::issue`). The category and location have no editor in
/// the document API, so they are fixed like the rest of the header.
const ISSUE: &[(&str, Rule)] = &[
    ("schema", Rule::Header),
    ("kind", Rule::Header),
    ("id", Rule::Header),
    ("system", Rule::Header),
    ("category", Rule::Header),
    ("asset", Rule::Header),
    ("division", Rule::Header),
    ("location", Rule::Header),
    ("reporter", Rule::Header),
    ("reported_at", Rule::Header),
    ("patrol", Rule::Header),
    ("severity", Rule::Edited),
    ("description", Rule::Edited),
    ("photos", Rule::Appended(Element::Photo)),
    ("events", Rule::Appended(Element::Event)),
    ("order", Rule::Server),
    // How a report from outside reached the loop (`public::IssueSource`): only the server
    // records it, so no phone can pass its report off as a resident's.
    ("source", Rule::Server),
];

fn rules(kind: DocKind) -> &'static [(&'static str, Rule)] {
    match kind {
        DocKind::Patrol => PATROL,
        DocKind::Issue => ISSUE,
    }
}

/// A document read through its typed views. A document the views cannot read does not follow
/// the schema.
#[derive(Debug, Clone)]
pub(super) enum Reading {
    Patrol(Patrol),
    Issue {
        issue: Issue,
        events: Vec<Event>,
        receipts: Vec<Receipt>,
    },
}

impl Reading {
    pub fn kind(&self) -> DocKind {
        match self {
            Reading::Patrol(_) => DocKind::Patrol,
            Reading::Issue { .. } => DocKind::Issue,
        }
    }
}

/// Reads `doc` (which must be `doc_id`) and hands it back with its reading; on error the
/// document is dropped, as every caller discards a document that does not read.
pub(super) fn read(doc_id: &str, doc: AutoCommit) -> Result<(AutoCommit, Reading), DocError> {
    let header = doc::header(&doc)?;
    if header.id != doc_id {
        return Err(DocError::Schema(format!(
            "the document says it is {}, not {doc_id}",
            header.id
        )));
    }
    let known = rules(header.kind);
    if let Some(key) = doc.keys(ROOT).find(|k| !known.iter().any(|(r, _)| r == k)) {
        return Err(DocError::Schema(format!(
            "unknown field {key} in a {}",
            header.kind.as_str()
        )));
    }
    Ok(match header.kind {
        DocKind::Patrol => {
            let mut patrol = PatrolDoc::from_automerge(doc)?;
            let reading = Reading::Patrol(patrol.view()?);
            (std::mem::take(patrol.am_mut()), reading)
        }
        DocKind::Issue => {
            let mut issue = IssueDoc::from_automerge(doc)?;
            let reading = Reading::Issue {
                issue: issue.view()?,
                events: issue.events()?,
                receipts: issue.receipts()?,
            };
            (std::mem::take(issue.am_mut()), reading)
        }
    })
}

/// A document's root as the rules compare it: every root value, and which object each root
/// key of either kind holds. Read once per document state: the state after one change of a
/// batch is the state before the next.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    values: HashMap<String, MapValue>,
    objects: HashMap<&'static str, Option<ObjId>>,
}

impl Frame {
    pub fn of(doc: &AutoCommit) -> Result<Frame, DocError> {
        let values = match doc.hydrate(ROOT, None)? {
            hydrate::Value::Map(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => return Err(DocError::Schema("the root is not a map".into())),
        };
        // One pass over the root instead of a lookup per key.
        let mut objects: HashMap<&'static str, Option<ObjId>> = PATROL
            .iter()
            .chain(ISSUE)
            .map(|&(key, _)| (key, None))
            .collect();
        for item in doc.map_range(ROOT, ..) {
            if let (Some(slot), ValueRef::Object(_)) = (objects.get_mut(&*item.key), &item.value) {
                *slot = Some(item.id());
            }
        }
        Ok(Frame { values, objects })
    }

    fn object(&self, key: &str) -> Option<&ObjId> {
        self.objects.get(key).and_then(Option::as_ref)
    }
}

/// What one change did to a document that already existed, or what a new document holds.
#[derive(Debug, Default)]
pub(super) struct Diff {
    /// Edited fields whose value changed (on a new document: every edited field present).
    pub edited: Vec<&'static str>,
    /// Per append-only list: its length before and after.
    lists: Vec<(&'static str, usize, usize)>,
}

impl Diff {
    /// The indexes of the entries appended to `list`.
    pub fn appended(&self, list: &str) -> Range<usize> {
        self.lists
            .iter()
            .find(|(name, ..)| *name == list)
            .map_or(0..0, |(_, before, after)| *before..*after)
    }

    /// Whether any of `fields` was edited or appended to.
    pub fn touched(&self, fields: &[&str]) -> bool {
        fields
            .iter()
            .any(|f| self.edited.contains(f) || !self.appended(f).is_empty())
    }
}

/// Compares `now` (the frame of a readable document of `kind`) with `was` (`None` for a new
/// document): header fields and containers unchanged, lists grown only at their end, and every
/// appended entry well formed.
pub(super) fn diff(kind: DocKind, was: Option<&Frame>, now: &Frame) -> Result<Diff, Refusal> {
    let empty = HashMap::new();
    let old_values = match was {
        Some(was) => {
            check_frame(kind, was, now)?;
            &was.values
        }
        None => {
            // One change cannot conflict with itself unless it was forged to.
            if let Some((key, _)) = now.values.iter().find(|(_, v)| v.conflict) {
                return Err(Refusal::Schema(format!("{key} holds conflicting values")));
            }
            &empty
        }
    };
    let mut diff = Diff::default();
    for &(key, rule) in rules(kind) {
        let (old, new) = (old_values.get(key), now.values.get(key));
        match rule {
            Rule::Header => {}
            Rule::Server => {
                if old != new {
                    return Err(Refusal::ServerOnly { field: key.into() });
                }
            }
            Rule::Edited => {
                if old != new {
                    diff.edited.push(key);
                }
            }
            Rule::Appended(element) => {
                let old = list_items(key, old)?;
                let new = list_items(key, new)?;
                if new.len() < old.len() || old.iter().zip(&new).any(|(a, b)| a != b) {
                    return Err(Refusal::HistoryRewrite { list: key.into() });
                }
                for (index, item) in new.iter().enumerate().skip(old.len()) {
                    check_element(element, item)
                        .map_err(|why| Refusal::Schema(format!("{key}[{index}] {why}")))?;
                }
                diff.lists.push((key, old.len(), new.len()));
            }
        }
    }
    Ok(diff)
}

/// Checks that merging changes into `before` left its frame alone: the header as it was and
/// every container the same object. Used for each change and for the merged result, which can
/// differ when a change was made concurrently with what the server already holds.
pub(super) fn frame(kind: DocKind, before: &AutoCommit, after: &AutoCommit) -> Result<(), Refusal> {
    check_frame(kind, &Frame::of(before)?, &Frame::of(after)?)
}

fn check_frame(kind: DocKind, was: &Frame, now: &Frame) -> Result<(), Refusal> {
    for &(key, rule) in rules(kind) {
        let replaced = was.object(key) != now.object(key);
        match rule {
            Rule::Header if replaced || was.values.get(key) != now.values.get(key) => {
                return Err(Refusal::ImmutableField { field: key.into() })
            }
            Rule::Edited if replaced && was.object(key).is_some() => {
                return Err(Refusal::Schema(format!(
                    "{key} was replaced by a new object instead of being edited"
                )))
            }
            Rule::Appended(_) if replaced || now.values.get(key).is_some_and(|v| v.conflict) => {
                return Err(Refusal::HistoryRewrite { list: key.into() })
            }
            Rule::Server if replaced && was.object(key).is_some() => {
                return Err(Refusal::ServerOnly { field: key.into() })
            }
            _ => {}
        }
    }
    Ok(())
}

fn list_items<'a>(
    key: &str,
    value: Option<&'a MapValue>,
) -> Result<Vec<&'a hydrate::ListValue>, Refusal> {
    match value.map(|v| &v.value) {
        None => Ok(Vec::new()),
        Some(hydrate::Value::List(list)) => Ok(list.iter().collect()),
        Some(_) => Err(Refusal::Schema(format!("{key} is not a list"))),
    }
}

fn check_element(element: Element, item: &hydrate::ListValue) -> Result<(), String> {
    if item.conflict || !item.marks.is_empty() {
        return Err("holds conflicting or marked values".into());
    }
    match (element, &item.value) {
        (Element::TrackChunk, hydrate::Value::Scalar(ScalarValue::Bytes(bytes))) => {
            track::decode_chunk(bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        (Element::TrackChunk, _) => Err("is not a track chunk".into()),
        (Element::IssueId, hydrate::Value::Scalar(ScalarValue::Str(_))) => Ok(()),
        (Element::IssueId, _) => Err("is not an issue id".into()),
        (Element::Photo, value) => exact_record::<PhotoRef>(value),
        (Element::Event, value) => exact_record::<Event>(value),
    }
}

/// A list entry must be exactly a `T`: readable as one, and holding nothing a `T` does not,
/// so no client can smuggle extra fields into history that other clients would show.
fn exact_record<T: Serialize + DeserializeOwned>(value: &hydrate::Value) -> Result<(), String> {
    let json = to_json(value).ok_or("holds values a record cannot")?;
    let typed: T = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
    let canonical = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if same(&canonical, &json) {
        Ok(())
    } else {
        Err("holds fields the record does not have".into())
    }
}

fn to_json(value: &hydrate::Value) -> Option<Json> {
    match value {
        hydrate::Value::Scalar(scalar) => Some(match scalar {
            ScalarValue::Str(s) => Json::String(s.to_string()),
            ScalarValue::Int(i) => Json::from(*i),
            ScalarValue::Uint(u) => Json::from(*u),
            ScalarValue::F64(f) => Json::Number(Number::from_f64(*f)?),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            ScalarValue::Null => Json::Null,
            _ => return None,
        }),
        hydrate::Value::Map(map) => {
            let mut out = Map::new();
            for (key, entry) in map.iter() {
                if entry.conflict {
                    return None;
                }
                out.insert(key.clone(), to_json(&entry.value)?);
            }
            Some(Json::Object(out))
        }
        hydrate::Value::List(list) => list
            .iter()
            .map(|item| {
                (!item.conflict && item.marks.is_empty())
                    .then(|| to_json(&item.value))
                    .flatten()
            })
            .collect::<Option<Vec<_>>>()
            .map(Json::Array),
        hydrate::Value::Text(_) => None,
    }
}

/// JSON equality where numbers compare by value: other automerge clients (JavaScript) store a
/// whole-numbered float as an integer.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
