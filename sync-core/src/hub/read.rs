//! What one user may read of the stored documents, for every answer the server gives outside
//! sync: the document listing and detail, the audit trail, the issue board and patrol pages,
//! the photo access check. The rule is `authz::in_scope`, what a user may read and change;
//! what their phones receive at sync is the narrower `authz::delivered`, which any read can
//! widen on demand. [`ReadScope`] applies them to each kind of read, so a handler asks one
//! question and shapes the answer.
//!
//! A document outside the reader's scope is answered exactly like one that does not exist:
//! whether a patrol or an issue exists is nobody's business outside its scope.
//!
//! ```
//! use sync_core::authz::DocMeta;
//! use sync_core::doc::DocKind;
//! use sync_core::hub::read::ReadScope;
//! use sync_core::hub::testing::{doc_meta, MemoryHubStore, Reference};
//! use sync_core::hub::DocumentStore;
//! use sync_core::model::{DivisionCode, Jurisdiction, Level, Role, System, User};
//!
//! let store = MemoryHubStore::with_reference(Reference::default());
//! store.save_document("p-1", &doc_meta("p-1", DocKind::Patrol), b"", &[])?;
//! let forest_chief = User {
//!     id: "u-forest".into(),
//!     username: "demo-forest-chief".into(),
//!     display_name: "林长".into(),
//!     role: Role::Chief {
//!         system: System::Forest,
//!         level: Level::Village,
//!         jurisdiction: Jurisdiction {
//!             division: DivisionCode::new("370105001000")?,
//!             assets: vec![],
//!         },
//!     },
//!     active: true,
//! };
//! // The river patrol of the forest chief's own village is not theirs to read.
//! assert!(ReadScope::of(&forest_chief).document(&store, "p-1", None)?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{AuditEntry, AuditLog, DocumentStore, HubError, StoredDoc};
use crate::authz::{delivered, in_scope, reads_audit, DocMeta, Reach};
use crate::doc::DocKind;
use crate::model::User;

/// What one user may read: the scope rule applied to the server's reads. Cheap to make; make
/// one per request.
#[derive(Debug, Clone, Copy)]
pub struct ReadScope<'u> {
    user: &'u User,
}

/// One page of a listing: the routing facts of the documents on it, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The documents on this page.
    pub docs: Vec<DocMeta>,
    /// The id to continue after for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A document's audit trail as one user may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// No such document in the reader's scope (it may exist outside it).
    Unknown,
    /// The document is in the reader's scope, but the trail (which device delivered each
    /// change, and when) is for supervisors and administrators.
    Withheld,
    /// Every accepted change of the document, in the order it was received.
    Entries(Vec<AuditEntry>),
}

impl<'u> ReadScope<'u> {
    /// The reads of `user`.
    pub fn of(user: &'u User) -> Self {
        Self { user }
    }

    /// The reader.
    pub fn user(&self) -> &'u User {
        self.user
    }

    /// Whether the reader may read the document these routing facts describe.
    pub fn sees(&self, meta: &DocMeta) -> bool {
        in_scope(self.user, meta)
    }

    /// Whether the reader may read the document as a `kind`: a patrol asked for as an issue is
    /// not there.
    pub fn sees_as(&self, kind: DocKind, meta: &DocMeta) -> bool {
        meta.kind == kind && self.sees(meta)
    }

    /// Whether the reader sees the audit facts of what they may read: which user and device
    /// delivered each change and when the server received it (`authz::reads_audit`).
    pub fn reads_audit(&self) -> bool {
        reads_audit(self.user)
    }

    /// The stored document `id` when the reader may read it, and it is a `kind` when one is
    /// given; `None` when it is unknown, out of scope or of another kind.
    pub fn document<S: DocumentStore + ?Sized>(
        &self,
        store: &S,
        id: &str,
        kind: Option<DocKind>,
    ) -> Result<Option<StoredDoc>, HubError> {
        Ok(store
            .document(id)?
            .filter(|stored| kind.is_none_or(|k| stored.meta.kind == k) && self.sees(&stored.meta)))
    }

    /// Up to `limit` (at least one) documents the reader may read, of `kind` when given, whose
    /// ids come after `after`, in id order. The page holds only readable documents, so a page
    /// is short only at the end of the listing.
    pub fn page<S: DocumentStore + ?Sized>(
        &self,
        store: &S,
        kind: Option<DocKind>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, HubError> {
        self.page_where(store, kind, after, limit, None)
    }

    /// As [`ReadScope::page`], of only the documents the reader's phones receive at sync at
    /// `now_ms` (`authz::delivered`): a chief's own work and the problems they act on.
    pub fn delivered_page<S: DocumentStore + ?Sized>(
        &self,
        store: &S,
        kind: Option<DocKind>,
        after: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Page, HubError> {
        let only = |m: &DocMeta| delivered(self.user, m, now_ms);
        self.page_where(store, kind, after, limit, Some(&only))
    }

    /// `only`, when given, accepts only documents the reader's phones receive: the page is
    /// then walked over those alone ([`DocumentStore::delivered_page`]).
    fn page_where<S: DocumentStore + ?Sized>(
        &self,
        store: &S,
        kind: Option<DocKind>,
        after: Option<&str>,
        limit: usize,
        only: Option<&dyn Fn(&DocMeta) -> bool>,
    ) -> Result<Page, HubError> {
        let limit = limit.max(1);
        let keep = |m: &DocMeta| {
            kind.is_none_or(|k| m.kind == k) && self.sees(m) && only.is_none_or(|only| only(m))
        };
        let mut docs = match only {
            Some(_) => store.delivered_page(&Reach::of(self.user), after, limit + 1, &keep)?,
            None => store.documents_page(after, limit + 1, &keep)?,
        };
        let more = docs.len() > limit;
        docs.truncate(limit);
        let next = if more {
            docs.last().map(|m| m.id.clone())
        } else {
            None
        };
        Ok(Page { docs, next })
    }

    /// The audit trail of document `id`. Whether the document is in scope is decided first,
    /// so a reader who may not see the trail learns nothing of documents outside their scope.
    pub fn history<S: DocumentStore + AuditLog + ?Sized>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<History, HubError> {
        if self.document(store, id, None)?.is_none() {
            return Ok(History::Unknown);
        }
        if !self.reads_audit() {
            return Ok(History::Withheld);
        }
        Ok(History::Entries(store.history(id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::testing::{MemoryHubStore, Reference};
    use crate::model::{DivisionCode, Jurisdiction, Level, Role, System};
    use crate::workflow::{Assignee, Status};

    const VILLAGE: &str = "370105014201";
    const OTHER_VILLAGE: &str = "370105014202";
    const SUBDISTRICT: &str = "370105014000";

    fn code(s: &str) -> DivisionCode {
        DivisionCode::new(s).unwrap()
    }

    fn user(id: &str, role: Role) -> User {
        User {
            id: id.into(),
            username: id.into(),
            display_name: id.into(),
            role,
            active: true,
        }
    }

    fn chief(id: &str, system: System, village: &str) -> User {
        user(
            id,
            Role::Chief {
                system,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: code(village),
                    assets: Vec::new(),
                },
            },
        )
    }

    fn supervisor(id: &str, system: System) -> User {
        user(
            id,
            Role::Supervisor {
                system,
                division: code(SUBDISTRICT),
            },
        )
    }

    fn meta(id: &str, kind: DocKind, owner: &str, village: &str) -> DocMeta {
        DocMeta {
            id: id.into(),
            kind,
            system: System::River,
            asset: format!("asset-{village}"),
            division: code(village),
            owner: owner.into(),
            assignee: None,
            status: (kind == DocKind::Issue).then_some(Status::Reported),
            closed_at_ms: None,
            escalated: false,
        }
    }

    fn entry(doc: &str, change: &str) -> AuditEntry {
        AuditEntry {
            doc_id: doc.into(),
            change: change.into(),
            user: "u-chief".into(),
            device: "u-chief/phone".into(),
            actor: "ab".repeat(16),
            received_at_ms: 1_000,
            previous_sync_ms: None,
        }
    }

    /// A river village's patrol and issue, the neighbouring village's, and an issue of the
    /// neighbouring village assigned by name to this village's chief.
    fn store() -> MemoryHubStore {
        let store = MemoryHubStore::with_reference(Reference::default());
        let mut assigned = meta("i-3", DocKind::Issue, "u-chief-2", OTHER_VILLAGE);
        assigned.assignee = Some(Assignee::User("u-chief".into()));
        assigned.status = Some(Status::Assigned);
        for (m, audit) in [
            (meta("i-1", DocKind::Issue, "u-chief", VILLAGE), vec![]),
            (
                meta("i-2", DocKind::Issue, "u-chief-2", OTHER_VILLAGE),
                vec![],
            ),
            (assigned, vec![]),
            (
                meta("p-1", DocKind::Patrol, "u-chief", VILLAGE),
                vec![entry("p-1", "c1"), entry("p-1", "c2")],
            ),
            (
                meta("p-2", DocKind::Patrol, "u-chief-2", OTHER_VILLAGE),
                vec![],
            ),
        ] {
            store.save_document(&m.id.clone(), &m, b"", &audit).unwrap();
        }
        store
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.docs.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn a_document_is_read_only_in_scope_and_as_its_own_kind() {
        let store = store();
        let owner = chief("u-chief", System::River, VILLAGE);
        let reads = ReadScope::of(&owner);
        let found = |id, kind| reads.document(&store, id, kind).unwrap().map(|s| s.meta.id);
        assert_eq!(found("p-1", None).as_deref(), Some("p-1"));
        assert_eq!(found("p-1", Some(DocKind::Patrol)).as_deref(), Some("p-1"));
        // A patrol asked for as an issue is not there, and an issue as a patrol.
        assert_eq!(found("p-1", Some(DocKind::Issue)), None);
        assert_eq!(found("i-1", Some(DocKind::Patrol)), None);
        // The neighbouring village's records are not this chief's, except the issue assigned
        // to them by name.
        assert_eq!(found("p-2", None), None);
        assert_eq!(found("i-2", Some(DocKind::Issue)), None);
        assert_eq!(found("i-3", Some(DocKind::Issue)).as_deref(), Some("i-3"));
        assert_eq!(found("nothing", None), None);

        // The forest chief of the same village reads none of the river records.
        let forest = chief("u-forest", System::Forest, VILLAGE);
        for id in ["p-1", "i-1", "i-3"] {
            assert!(ReadScope::of(&forest)
                .document(&store, id, None)
                .unwrap()
                .is_none());
        }
        // A deactivated chief reads nothing, not even their own patrol.
        let mut gone = chief("u-chief", System::River, VILLAGE);
        gone.active = false;
        assert!(ReadScope::of(&gone)
            .document(&store, "p-1", None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn pages_hold_only_readable_documents_and_end_where_the_listing_ends() {
        let store = store();
        let chief = chief("u-chief", System::River, VILLAGE);
        let reads = ReadScope::of(&chief);
        // Ids in order: i-1, i-2, i-3, p-1, p-2; this chief reads i-1, i-3 and p-1. A page of
        // two is full although an unreadable document lies between them.
        let first = reads.page(&store, None, None, 2).unwrap();
        assert_eq!(ids(&first), ["i-1", "i-3"]);
        assert_eq!(first.next.as_deref(), Some("i-3"));
        let second = reads.page(&store, None, first.next.as_deref(), 2).unwrap();
        assert_eq!(ids(&second), ["p-1"]);
        assert_eq!(second.next, None);
        // Exactly a page's worth: no next page promised.
        let exact = reads.page(&store, None, None, 3).unwrap();
        assert_eq!(ids(&exact), ["i-1", "i-3", "p-1"]);
        assert_eq!(exact.next, None);
        let patrols = reads.page(&store, Some(DocKind::Patrol), None, 10).unwrap();
        assert_eq!(ids(&patrols), ["p-1"]);

        // The river office above both villages reads everything of its system; the forest
        // office of the same subdistrict nothing.
        let office = supervisor("s-river", System::River);
        let all = ReadScope::of(&office).page(&store, None, None, 10).unwrap();
        assert_eq!(ids(&all), ["i-1", "i-2", "i-3", "p-1", "p-2"]);
        let forest_office = supervisor("s-forest", System::Forest);
        let none = ReadScope::of(&forest_office)
            .page(&store, None, None, 10)
            .unwrap();
        assert!(none.docs.is_empty() && none.next.is_none());
    }

    #[test]
    fn the_audit_trail_is_for_supervisors_and_never_tells_what_lies_outside_scope() {
        let store = store();
        let office = supervisor("s-river", System::River);
        assert_eq!(
            ReadScope::of(&office).history(&store, "p-1").unwrap(),
            History::Entries(vec![entry("p-1", "c1"), entry("p-1", "c2")])
        );
        // The chief may read the patrol, not who delivered it when.
        let chief = chief("u-chief", System::River, VILLAGE);
        assert_eq!(
            ReadScope::of(&chief).history(&store, "p-1").unwrap(),
            History::Withheld
        );
        // Out of scope answers as unknown, for a chief and for another system's office alike:
        // asking for the trail does not tell them the document exists.
        assert_eq!(
            ReadScope::of(&chief).history(&store, "p-2").unwrap(),
            History::Unknown
        );
        let forest_office = supervisor("s-forest", System::Forest);
        assert_eq!(
            ReadScope::of(&forest_office)
                .history(&store, "p-1")
                .unwrap(),
            History::Unknown
        );
        assert_eq!(
            ReadScope::of(&office).history(&store, "nothing").unwrap(),
            History::Unknown
        );
        let admin = user("a", Role::Admin);
        assert!(ReadScope::of(&admin).reads_audit());
        assert!(!ReadScope::of(&user(
            "h",
            Role::Handler {
                department: "区水务局".into()
            }
        ))
        .reads_audit());
    }

    #[test]
    fn kinds_and_scope_decide_together() {
        let chief = chief("u-chief", System::River, VILLAGE);
        let reads = ReadScope::of(&chief);
        let patrol = meta("p-1", DocKind::Patrol, "u-chief", VILLAGE);
        assert!(reads.sees(&patrol));
        assert!(reads.sees_as(DocKind::Patrol, &patrol));
        assert!(!reads.sees_as(DocKind::Issue, &patrol));
        let elsewhere = meta("p-2", DocKind::Patrol, "u-chief-2", OTHER_VILLAGE);
        assert!(!reads.sees_as(DocKind::Patrol, &elsewhere));
    }
}
