//! The issue document: a reported problem and its append-only workflow event list.
//!
//! Root keys: `system`, `category`, `severity`, `asset`, `division`, `location` (map {lon, lat}),
//! `reporter`, `reported_at`, `patrol` (the patrol it was found on, or absent), `description`
//! (text), `photos` (list of photo references) and `events` (list of workflow events). Status,
//! assignee, deadline and overdue are never stored: they are `workflow::fold` over `events`.

use automerge::{
    transaction::Transactable, ActorId, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value,
    ROOT,
};
use serde::{Deserialize, Serialize};

use super::{
    init, load_kind, root_opt_i64, root_scalar, root_str, value, DocError, DocKind, Record,
};
use crate::model::{DivisionCode, PhotoRef, Severity, System, User};
use crate::workflow::{self, Action, Event, IssueContext, IssueState};

/// What a chief enters when reporting a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewIssue {
    pub system: System,
    pub category: String,
    pub severity: Severity,
    pub asset: String,
    pub division: DivisionCode,
    /// `[lon, lat]`
    pub location: [f64; 2],
    pub description: String,
    pub patrol: Option<String>,
}

/// A read-only snapshot of an issue document's record fields (the workflow state is separate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub id: String,
    pub system: System,
    pub category: String,
    pub severity: Severity,
    pub asset: String,
    pub division: DivisionCode,
    pub location: [f64; 2],
    pub reporter: String,
    pub reported_at_ms: i64,
    pub patrol: Option<String>,
    pub description: String,
    pub photos: Vec<PhotoRef>,
}

#[derive(Debug)]
pub struct IssueDoc {
    doc: AutoCommit,
    id: String,
}

impl Record for IssueDoc {
    fn am(&self) -> &AutoCommit {
        &self.doc
    }
    fn am_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }
}

impl IssueDoc {
    /// Creates the issue and appends its `reported` event, if `reporter` may report on that
    /// asset (a chief in scope or a supervisor).
    pub fn report(
        actor: ActorId,
        reporter: &User,
        device: &str,
        at_ms: i64,
        new: &NewIssue,
    ) -> Result<Self, DocError> {
        let ctx = IssueContext {
            system: new.system,
            division: new.division.clone(),
            asset: new.asset.clone(),
            reporter: reporter.id.clone(),
        };
        let who = workflow::relations(reporter, &ctx, &workflow::fold(&[]));
        workflow::check(&workflow::fold(&[]), &who, &Action::Reported)?;

        let id = super::new_doc_id();
        let mut doc = init(actor, DocKind::Issue, &id)?;
        doc.put(ROOT, "system", new.system.as_str())?;
        doc.put(ROOT, "category", new.category.as_str())?;
        doc.put(ROOT, "severity", new.severity.as_str())?;
        doc.put(ROOT, "asset", new.asset.as_str())?;
        doc.put(ROOT, "division", new.division.as_str())?;
        let location = doc.put_object(ROOT, "location", ObjType::Map)?;
        doc.put(&location, "lon", new.location[0])?;
        doc.put(&location, "lat", new.location[1])?;
        doc.put(ROOT, "reporter", reporter.id.as_str())?;
        doc.put(ROOT, "reported_at", at_ms)?;
        if let Some(patrol) = &new.patrol {
            doc.put(ROOT, "patrol", patrol.as_str())?;
        }
        let description = doc.put_object(ROOT, "description", ObjType::Text)?;
        doc.update_text(&description, &new.description)?;
        doc.put_object(ROOT, "photos", ObjType::List)?;
        doc.put_object(ROOT, "events", ObjType::List)?;
        let mut issue = Self { doc, id };
        issue.push_event(&Event {
            id: super::new_doc_id(),
            by: reporter.id.clone(),
            device: device.to_string(),
            at_ms,
            action: Action::Reported,
        })?;
        Ok(issue)
    }

    pub fn load(bytes: &[u8]) -> Result<Self, DocError> {
        Self::from_automerge(load_kind(bytes, DocKind::Issue)?)
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
            _ => Err(DocError::Schema(format!("issue lacks {key}"))),
        }
    }

    /// Who reported what where: the facts the workflow's authorization needs.
    pub fn context(&self) -> Result<IssueContext, DocError> {
        let issue = self.view()?;
        Ok(IssueContext {
            system: issue.system,
            division: issue.division,
            asset: issue.asset,
            reporter: issue.reporter,
        })
    }

    /// The workflow events in list order, the order every replica agrees on after a merge.
    pub fn events(&self) -> Result<Vec<Event>, DocError> {
        value::read_records(&self.doc, &self.obj("events")?)
    }

    /// The derived workflow state: a pure fold over the events.
    pub fn state(&self) -> Result<IssueState, DocError> {
        Ok(workflow::fold(&self.events()?))
    }

    /// Appends `action` by `user` if the transition table allows it in the current state;
    /// otherwise returns the typed workflow error and leaves the document untouched.
    pub fn act(
        &mut self,
        user: &User,
        device: &str,
        at_ms: i64,
        action: Action,
    ) -> Result<Event, DocError> {
        self.act_as(super::new_doc_id(), user, device, at_ms, action)
    }

    /// [`IssueDoc::act`] with the event's id chosen by the caller (the web's idempotency key, so
    /// that a replayed request finds its event instead of appending another).
    pub fn act_as(
        &mut self,
        event_id: String,
        user: &User,
        device: &str,
        at_ms: i64,
        action: Action,
    ) -> Result<Event, DocError> {
        let state = self.state()?;
        workflow::authorize(user, &self.context()?, &self.id, &state, &action)?;
        let event = Event {
            id: event_id,
            by: user.id.clone(),
            device: device.to_string(),
            at_ms,
            action,
        };
        self.push_event(&event)?;
        Ok(event)
    }

    fn push_event(&mut self, event: &Event) -> Result<(), DocError> {
        let events = self.obj("events")?;
        value::push_record(&mut self.doc, &events, event)
    }

    /// Whether `user` may edit this issue's record fields (description, severity, photo list).
    pub fn edits_record(&self, user: &User) -> Result<bool, DocError> {
        let who = workflow::relations(user, &self.context()?, &self.state()?);
        Ok(workflow::edits_record(&who))
    }

    pub fn set_description(&mut self, text: &str) -> Result<(), DocError> {
        let obj = self.obj("description")?;
        self.doc.update_text(&obj, text)?;
        Ok(())
    }

    pub fn set_severity(&mut self, severity: Severity) -> Result<(), DocError> {
        self.doc.put(ROOT, "severity", severity.as_str())?;
        Ok(())
    }

    pub fn add_photo(&mut self, photo: &PhotoRef) -> Result<(), DocError> {
        let photos = self.obj("photos")?;
        value::push_record(&mut self.doc, &photos, photo)
    }

    pub fn view(&self) -> Result<Issue, DocError> {
        let doc = &self.doc;
        let system = root_str(doc, "system")?;
        let severity = root_str(doc, "severity")?;
        let location = value::read_json(doc, &self.obj("location")?)?;
        let coordinate = |key: &str| {
            location[key]
                .as_f64()
                .ok_or_else(|| DocError::Schema(format!("location lacks {key}")))
        };
        Ok(Issue {
            id: self.id.clone(),
            system: System::parse(&system)
                .ok_or_else(|| DocError::Schema(format!("unknown system {system}")))?,
            category: root_str(doc, "category")?,
            severity: Severity::parse(&severity)
                .ok_or_else(|| DocError::Schema(format!("unknown severity {severity}")))?,
            asset: root_str(doc, "asset")?,
            division: DivisionCode::new(root_str(doc, "division")?)
                .map_err(|e| DocError::Schema(e.to_string()))?,
            location: [coordinate("lon")?, coordinate("lat")?],
            reporter: root_str(doc, "reporter")?,
            reported_at_ms: root_opt_i64(doc, "reported_at")?
                .ok_or_else(|| DocError::Schema("issue lacks reported_at".into()))?,
            patrol: match root_scalar(doc, "patrol")? {
                Some(ScalarValue::Str(s)) => Some(s.to_string()),
                _ => None,
            },
            description: doc.text(self.obj("description")?)?,
            photos: value::read_records(doc, &self.obj("photos")?)?,
        })
    }
}
