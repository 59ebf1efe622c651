//! Issues and photos on the phone: report a problem, take workflow steps, list and show issues
//! with their derived status, attach photos to a patrol or an issue.
//!
//! Every rule (who may take which step in which status, what a report needs) is sync-core's
//! workflow; this file passes the signed-in user to it and turns its answers into app types.

use std::path::Path;

use sync_core::authz::check_category;
use sync_core::client::{attach_photo, stage_photo};
use sync_core::doc::{self, DocKind, NewIssue, Record};
use sync_core::model::PhotoRole;
use sync_core::workflow::{self, IssueContext};

use crate::client::PhoneApp;
use crate::error::{ChiefsyncError, Result};
use crate::types::{
    check_position, EventDraft, IssueDetail, IssueFilter, IssueSummary, PhotoRef, TimelineItem,
};

impl PhoneApp {
    fn issue_detail(&self, issue_id: &str) -> Result<IssueDetail> {
        let doc = self.issue_doc(issue_id, None)?;
        let issue = doc.view()?;
        let state = doc.state()?;
        let summary = IssueSummary::of(&issue, &state, self.now(), self.local_facts(issue_id)?);
        let allowed_actions = match self.account.session() {
            Some(session) => {
                workflow::allowed_actions(&session.user, &IssueContext::of(&issue), &state)
            }
            None => Vec::new(),
        };
        Ok(IssueDetail {
            summary,
            division: issue.division.to_string(),
            lon: issue.location[0],
            lat: issue.location[1],
            patrol_id: issue.patrol.clone(),
            photos: issue.photos.iter().map(PhotoRef::of).collect(),
            timeline: state
                .timeline
                .iter()
                .map(TimelineItem::of)
                .collect::<Result<_>>()?,
            allowed_actions,
            escalations: state.escalations,
            rejections: state.rejections,
        })
    }
}

impl PhoneApp {
    /// Reports a problem now (offline is fine); returns the issue id. The asset decides the
    /// system and division; a patrol named in the draft lists the issue too.
    pub fn report_issue(&self, draft: crate::types::IssueDraft) -> Result<String> {
        check_position(draft.lat, draft.lon)?;
        if draft.description.trim().is_empty() {
            return Err(ChiefsyncError::invalid("describe the problem"));
        }
        let (session, actor) = self.author()?;
        let reference = self.account.reference()?;
        let asset = crate::session::jurisdiction_asset(&reference, &draft.asset_id)?;
        check_category(&draft.category, asset.system, &reference.categories)
            .map_err(|e| ChiefsyncError::invalid(e.to_string()))?;
        let new = NewIssue {
            system: asset.system,
            category: draft.category,
            severity: draft.severity,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: [draft.lon, draft.lat],
            description: draft.description,
            patrol: draft.patrol_id.clone(),
        };
        let _docs = self.lock_docs();
        let mut patrol = match &draft.patrol_id {
            Some(id) => Some(self.patrol_doc(id, Some(&actor))?),
            None => None,
        };
        let mut issue =
            doc::IssueDoc::report(actor, &session.user, &session.device_id, self.now(), &new)?;
        let id = issue.id().to_owned();
        self.save(&mut issue, DocKind::Issue, &id)?;
        if let Some(patrol) = patrol.as_mut() {
            patrol.add_issue(&id)?;
            let patrol_id = patrol.id().to_owned();
            self.save(patrol, DocKind::Patrol, &patrol_id)?;
        }
        self.index_made(&id, issue.am());
        Ok(id)
    }

    /// Takes a workflow step on an issue as the signed-in user. A step the issue's status or
    /// the user's part in it does not allow is refused with `InvalidTransition` or `Forbidden`
    /// and changes nothing.
    pub fn append_event(&self, issue_id: String, event: EventDraft) -> Result<()> {
        let (session, actor) = self.author()?;
        let now = self.now();
        let _docs = self.lock_docs();
        let mut issue = self.issue_doc(&issue_id, Some(&actor))?;
        issue.act(&session.user, &session.device_id, now, event.into())?;
        self.save(&mut issue, DocKind::Issue, &issue_id)
    }

    /// The issues on this device (the user's jurisdiction), newest first.
    pub fn issues(&self, filter: IssueFilter) -> Result<Vec<IssueSummary>> {
        let now = self.now();
        let wanted = workflow::IssueFilter {
            statuses: filter.status.map(|s| vec![s]),
            open: filter.open_only.then_some(true),
            asset: filter.asset_id,
            ..workflow::IssueFilter::default()
        };
        let mut out = Vec::new();
        for id in self.store.doc_ids(sync_core::store::DocKind::Issue)? {
            let doc = self.issue_doc(&id, None)?;
            let issue = doc.view()?;
            let state = doc.state()?;
            if wanted.matches((&issue, &state), now, &mut || None) {
                out.push(IssueSummary::of(
                    &issue,
                    &state,
                    now,
                    self.local_facts(&id)?,
                ));
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.reported_at_ms));
        Ok(out)
    }

    /// One issue with its derived status, timeline and the steps the user may take now.
    pub fn issue(&self, issue_id: String) -> Result<IssueDetail> {
        self.issue_detail(&issue_id)
    }

    /// Prepares the camera photo at `file_path` (upright, at most 1920 px, JPEG, named by its
    /// SHA-256), keeps it in the app's photo folder, queues it for upload and references it from
    /// the patrol or issue `record_id`. Attaching the same photo twice changes nothing.
    pub fn attach_photo(
        &self,
        record_id: String,
        file_path: String,
        role: PhotoRole,
    ) -> Result<PhotoRef> {
        let (session, actor) = self.author()?;
        let file = Path::new(&file_path);
        let _docs = self.lock_docs();
        let bytes = self.store.load_doc(&record_id)?.ok_or_else(|| {
            ChiefsyncError::not_found(format!("no patrol or issue {record_id} on this device"))
        })?;
        let kind = doc::load(&bytes)?.1.kind;
        let photo = match kind {
            DocKind::Patrol => {
                let mut patrol = self.patrol_doc(&record_id, Some(&actor))?;
                let photo = attach_photo(
                    &self.store,
                    &mut patrol,
                    file,
                    role,
                    &self.photos,
                    &self.photo_dir,
                )?;
                self.save(&mut patrol, kind, &record_id)?;
                photo
            }
            DocKind::Issue => {
                let mut issue = self.issue_doc(&record_id, Some(&actor))?;
                if issue.edits_record(&session.user)? {
                    let photo = attach_photo(
                        &self.store,
                        &mut issue,
                        file,
                        role,
                        &self.photos,
                        &self.photo_dir,
                    )?;
                    self.save(&mut issue, kind, &record_id)?;
                    photo
                } else {
                    // A handler's after photo: uploaded with the issue's photos, referenced by
                    // the rectification event the app appends next, not by the record.
                    stage_photo(
                        &self.store,
                        &record_id,
                        file,
                        role,
                        &self.photos,
                        &self.photo_dir,
                    )?
                }
            }
        };
        Ok(PhotoRef::of(&photo))
    }
}
