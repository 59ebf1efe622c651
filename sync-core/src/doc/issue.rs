//! The issue document: a reported problem and its append-only workflow event list.
//!
//! Root keys: `system`, `category`, `severity`, `asset`, `division`, `location` (map {lon, lat}),
//! `reporter`, `reported_at`, `patrol` (the patrol it was found on, or absent), `description`
//! (text), `photos` (list of photo references), `events` (list of workflow events) and, from
//! schema 2, `order`: the server's receipts ([`Receipt`]), one per event it accepted, in the
//! order it accepted them. Only the server writes `order`; it is absent until the server
//! accepts its first event of the issue. Status, assignee, deadline and overdue are never
//! stored: they are `workflow::fold_ordered` over `events` and `order`.
//!
//! Documents of schema 1 have no `order` and are read in list order, as they always were. When
//! the server accepts the next event of such an issue it first lists the events already there,
//! in list order (each at its own device time), then the new one, so their history reads the
//! same as before and everything after it follows the server's order.

use std::collections::{HashMap, HashSet};

use automerge::{
    transaction::Transactable, ActorId, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value,
    ROOT,
};
use serde::{Deserialize, Serialize};

use super::{
    init, load_kind, root_opt_i64, root_scalar, root_str, value, DocError, DocKind, Record,
};
use crate::model::{DivisionCode, PhotoRef, Severity, System, User};
use crate::rules::DeviceClock;
use crate::workflow::{self, Action, Event, IssueContext, IssueState, Receipt, Targets};

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

/// Why a verification or rejection does not count: it was made on a rectification other than
/// the one that counts now (an offline supervisor's verdict on a submission that was rejected
/// and submitted again meanwhile). `None` for every other event.
fn stale_verdict(action: &Action, judged: Option<&str>, state: &IssueState) -> Option<String> {
    if !matches!(action, Action::Verified { .. } | Action::Rejected { .. }) {
        return None;
    }
    let current = state.submission.as_deref();
    (judged != current).then(|| {
        format!(
            "{} judges rectification {}, but the one to judge is {}",
            action.kind(),
            judged.unwrap_or("none"),
            current.unwrap_or("none")
        )
    })
}

/// An event a device's change appended, as the server's authorization found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub event: String,
    /// The latest server receive time of what the sender had seen when it appended the event:
    /// the event cannot have happened before it.
    pub not_before_ms: i64,
    /// The rectification that counted in the state the sender saw (`IssueState::submission`):
    /// a verification or rejection judges that one, and no other.
    pub judged: Option<String>,
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
        Ok(IssueContext::of(&self.view()?))
    }

    /// The workflow events in list order, the order every replica agrees on after a merge.
    pub fn events(&self) -> Result<Vec<Event>, DocError> {
        value::read_records(&self.doc, &self.obj("events")?)
    }

    /// The server's receipts, in the order it accepted the events (empty before the server
    /// accepted any, and for documents written before it kept receipts).
    pub fn receipts(&self) -> Result<Vec<Receipt>, DocError> {
        match self.doc.get(ROOT, "order")? {
            None => Ok(Vec::new()),
            Some((Value::Object(ObjType::List), list)) => value::read_records(&self.doc, &list),
            Some(_) => Err(DocError::Schema("order is not a list".into())),
        }
    }

    /// The derived workflow state: a pure fold over the events in the server's order.
    pub fn state(&self) -> Result<IssueState, DocError> {
        Ok(workflow::fold_ordered(&self.events()?, &self.receipts()?))
    }

    /// The server accepts the events `appended` (in the order it took them), sent by `user`:
    /// each gets a receipt at `now_ms`, and counts only if `user` may append it to the state
    /// every event accepted before it left — so an event built on old heads is judged after
    /// everything the server already holds, exactly as an honest phone's late event is. Each
    /// event's time is its device time bounded to `[not_before_ms, now_ms]`, by the one rule for
    /// times a phone supplies (`rules::times::DeviceClock::bound_strict`). Events without a
    /// receipt from before (a schema 1 document) are listed first, in list order. The targets
    /// an event names (assignee, duplicate) are checked against `targets`. For the server
    /// only: phones never write receipts. Returns how many of the events of `appended` did not
    /// count (their receipts say why).
    pub fn accept(
        &mut self,
        user: &User,
        appended: &[Appended],
        now_ms: i64,
        targets: &dyn Targets,
    ) -> Result<usize, DocError> {
        let events = self.events()?;
        let mut receipts = self.receipts()?;
        let order = match self.doc.get(ROOT, "order")? {
            Some((Value::Object(ObjType::List), list)) => list,
            None => self.doc.put_object(ROOT, "order", ObjType::List)?,
            Some(_) => return Err(DocError::Schema("order is not a list".into())),
        };
        // The events without a receipt that are not being accepted now: schema 1 history.
        let listed: HashSet<String> = receipts.iter().map(|r| r.event.clone()).collect();
        let new: HashSet<&str> = appended.iter().map(|a| a.event.as_str()).collect();
        let unlisted: Vec<&Event> = events
            .iter()
            .filter(|e| !listed.contains(&e.id) && !new.contains(e.id.as_str()))
            .collect();
        for event in unlisted {
            let receipt = Receipt {
                event: event.id.clone(),
                received_ms: None,
                at_ms: DeviceClock {
                    received_ms: Some(now_ms),
                    ..DeviceClock::default()
                }
                .bound_strict(event.at_ms),
                superseded: None,
            };
            value::push_record(&mut self.doc, &order, &receipt)?;
            receipts.push(receipt);
        }
        // The state every accepted event left: events without a receipt are not part of it.
        let listed: HashSet<&str> = receipts.iter().map(|r| r.event.as_str()).collect();
        let accepted: Vec<Event> = events
            .iter()
            .filter(|e| listed.contains(e.id.as_str()))
            .cloned()
            .collect();
        let mut state = workflow::fold_ordered(&accepted, &receipts);
        let ctx = self.context()?;
        let mut by_id: HashMap<&str, &Event> = HashMap::with_capacity(events.len());
        for event in &events {
            by_id.entry(event.id.as_str()).or_insert(event);
        }
        let mut received: HashSet<String> = receipts.iter().map(|r| r.event.clone()).collect();
        let mut not_counted = 0;
        for new in appended {
            let Some(event) = by_id.get(new.event.as_str()).copied() else {
                continue;
            };
            if !received.insert(new.event.clone()) {
                continue;
            }
            let superseded = workflow::authorize(user, &ctx, &self.id, &state, &event.action)
                .and_then(|()| workflow::check_targets(user, &ctx, &event.action, targets))
                .err()
                .map(|why| why.to_string())
                .or_else(|| stale_verdict(&event.action, new.judged.as_deref(), &state));
            not_counted += usize::from(superseded.is_some());
            // The one rule for times a phone supplies, strict as a workflow event's is: what
            // the sender had seen is its previous sync, the server's clock the receipt.
            let clock = DeviceClock {
                bound_ms: None,
                previous_sync_ms: Some(new.not_before_ms),
                received_ms: Some(now_ms),
            };
            let receipt = Receipt {
                event: event.id.clone(),
                received_ms: Some(now_ms),
                at_ms: clock.bound_strict(event.at_ms),
                superseded,
            };
            value::push_record(&mut self.doc, &order, &receipt)?;
            state.apply_received(event, Some(&receipt));
            receipts.push(receipt);
        }
        Ok(not_counted)
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

    /// Records how the problem reached the loop (`source` root key); only the server writes
    /// it, when it records a report from the public or an office. Issues without it were found
    /// on patrol.
    pub fn set_source(&mut self, source: crate::public::IssueSource) -> Result<(), DocError> {
        self.doc.put(ROOT, "source", source.as_str())?;
        Ok(())
    }

    /// How the problem reached the loop; [`crate::public::IssueSource::Patrol`] when unsaid.
    pub fn source(&self) -> Result<crate::public::IssueSource, DocError> {
        Ok(match root_scalar(&self.doc, "source")? {
            Some(ScalarValue::Str(s)) => crate::public::IssueSource::parse(&s)
                .ok_or_else(|| DocError::Schema(format!("unknown source {s}")))?,
            _ => crate::public::IssueSource::Patrol,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::actor_for;
    use crate::model::{Jurisdiction, Level, Role};
    use crate::workflow::Status;

    struct NoTargets;
    impl Targets for NoTargets {
        fn user(&self, _: &str) -> Option<User> {
            None
        }
        fn department(&self, _: &str) -> bool {
            false
        }
        fn issue(&self, _: &str) -> Option<(System, DivisionCode)> {
            None
        }
    }

    fn chief() -> User {
        User {
            id: "u-chief".into(),
            username: "chief".into(),
            display_name: "小寨村河长".into(),
            role: Role::Chief {
                system: System::River,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: DivisionCode::new("370105014201").unwrap(),
                    assets: vec!["xqh-01".into()],
                },
            },
            active: true,
        }
    }

    fn issue(at_ms: i64) -> IssueDoc {
        let new = NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: "xqh-01".into(),
            division: DivisionCode::new("370105014201").unwrap(),
            location: [116.98, 36.72],
            description: "垃圾".into(),
            patrol: None,
        };
        IssueDoc::report(actor_for(1), &chief(), "phone", at_ms, &new).unwrap()
    }

    #[test]
    fn accepting_lists_earlier_events_first_and_bounds_the_new_ones_times() {
        // A schema 1 issue: a report and a comment, no receipts.
        let mut doc = issue(1_000);
        let comment = doc
            .act(
                &chief(),
                "phone",
                2_000,
                Action::Comment { text: "补".into() },
            )
            .unwrap();
        let late = doc
            .act(
                &chief(),
                "phone",
                50_000,
                Action::Comment { text: "后".into() },
            )
            .unwrap();
        let mut server = IssueDoc::from_automerge(doc.am().clone())
            .unwrap()
            .with_actor(actor_for(9));
        server
            .accept(
                &chief(),
                &[Appended {
                    event: late.id.clone(),
                    not_before_ms: 5_000,
                    judged: None,
                }],
                9_000,
                &NoTargets,
            )
            .unwrap();
        let receipts = server.receipts().unwrap();
        let order: Vec<&str> = receipts.iter().map(|r| r.event.as_str()).collect();
        let events = server.events().unwrap();
        assert_eq!(
            order,
            [events[0].id.as_str(), comment.id.as_str(), late.id.as_str()]
        );
        // Stamped in the future: it counts at its arrival.
        assert_eq!(receipts[2].at_ms, 9_000);
        assert_eq!(receipts[2].received_ms, Some(9_000));
        assert_eq!(receipts[0].received_ms, None);
        let state = server.state().unwrap();
        assert_eq!(state.status, Some(Status::Reported));
        assert_eq!(state.timeline[2].at_ms, 9_000);
        assert_eq!(state.timeline[2].event.at_ms, 50_000);
    }

    #[test]
    fn an_event_the_sender_may_no_longer_append_is_received_as_superseded() {
        let doc = issue(1_000);
        let mut server = IssueDoc::from_automerge(doc.am().clone())
            .unwrap()
            .with_actor(actor_for(9));
        let reported = server.events().unwrap()[0].id.clone();
        server
            .accept(
                &chief(),
                &[Appended {
                    event: reported,
                    not_before_ms: i64::MIN,
                    judged: None,
                }],
                2_000,
                &NoTargets,
            )
            .unwrap();
        // The chief appends an acceptance, which only a supervisor may do.
        let mut forged = IssueDoc::from_automerge(server.am().clone())
            .unwrap()
            .with_actor(actor_for(1));
        let event = Event {
            id: crate::doc::new_doc_id(),
            by: "u-chief".into(),
            device: "phone".into(),
            at_ms: 3_000,
            action: Action::Accepted,
        };
        forged.push_event(&event).unwrap();
        let mut server = IssueDoc::from_automerge(forged.am().clone())
            .unwrap()
            .with_actor(actor_for(9));
        server
            .accept(
                &chief(),
                &[Appended {
                    event: event.id.clone(),
                    not_before_ms: 2_000,
                    judged: None,
                }],
                4_000,
                &NoTargets,
            )
            .unwrap();
        let state = server.state().unwrap();
        assert_eq!(state.status, Some(Status::Reported));
        let why = state.timeline[1].superseded.as_deref().unwrap();
        assert!(why.contains("supervisor"), "{why}");
    }
}
