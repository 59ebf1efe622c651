//! Patrols on the phone: start, record the track point by point, check items, finish.
//!
//! A patrol document stores its track as compact chunks of about a minute each
//! (`sync_core::track`). Points arrive one by one at 1 Hz and wait in a small record of the store
//! (written and flushed with each point) until ten minutes of them ([`CHANGE_POINTS`]) go into the
//! document as one change, or the patrol ends: a phone killed mid-patrol loses no fix, and the
//! server, the supervisors' phones and the wire carry one change per ten minutes of walking
//! instead of one per minute. That record also notes how many points the document held when it
//! began; points that reached the document just before a crash are therefore never appended
//! twice.

use std::collections::hash_map::Entry;

use sync_core::doc::{DocKind, NewPatrol, Patrol, PatrolDoc, Record};
use sync_core::model::{CheckResult, Provider, Role, TrackPoint};
use sync_core::track::{self, CHANGE_POINTS};

use crate::client::{lock, PhoneApp};
use crate::error::{ChiefsyncError, Result};
use crate::session::Session;
use crate::types::{check_position, PatrolSummary};

pub(crate) fn pending_key(patrol_id: &str) -> String {
    format!("ffi.track/{patrol_id}")
}

/// Points of a patrol not yet appended to its document.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingTrack {
    /// How many points the document's track held when these began.
    base_points: u64,
    points: Vec<TrackPoint>,
}

impl PendingTrack {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.base_points.to_le_bytes().to_vec();
        if !self.points.is_empty() {
            bytes.extend(track::encode_chunk(&self.points));
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Option<Self>> {
        let Some((base, chunk)) = bytes.split_first_chunk::<8>() else {
            return Ok(None);
        };
        let points = if chunk.is_empty() {
            Vec::new()
        } else {
            track::decode_chunk(chunk).map_err(|e| ChiefsyncError::Storage {
                detail: format!("buffered track points: {e}"),
            })?
        };
        Ok(Some(PendingTrack {
            base_points: u64::from_le_bytes(*base),
            points,
        }))
    }
}

impl PhoneApp {
    /// The patrol's buffered points, recovered from the store on first use after a restart.
    fn pending_track(&self, patrol_id: &str) -> Result<PendingTrack> {
        let doc = self.patrol_doc(patrol_id, None)?;
        if doc.view()?.ended_at_ms.is_some() {
            return Err(ChiefsyncError::invalid(format!(
                "patrol {patrol_id} is finished"
            )));
        }
        let in_doc = doc.track()?.len() as u64;
        let stored = match self.store.meta(&pending_key(patrol_id))? {
            Some(bytes) => PendingTrack::decode(&bytes)?,
            None => None,
        };
        Ok(match stored {
            // The document grew past the buffer's start: the buffer was appended just before
            // the app stopped, and only clearing it was lost.
            Some(pending) if pending.base_points == in_doc => pending,
            _ => PendingTrack {
                base_points: in_doc,
                points: Vec::new(),
            },
        })
    }

    fn store_pending(&self, patrol_id: &str, pending: &PendingTrack) -> Result<()> {
        self.store
            .put_meta(&pending_key(patrol_id), &pending.encode())?;
        Ok(())
    }

    /// Appends the buffered points to the document in one change, then empties the buffer.
    fn flush_track(&self, patrol_id: &str, pending: &mut PendingTrack) -> Result<()> {
        if pending.points.is_empty() {
            return Ok(());
        }
        let (_, actor) = self.author()?;
        {
            let _docs = self.lock_docs();
            let mut doc = self.patrol_doc(patrol_id, Some(&actor))?;
            doc.append_track(&pending.points)?;
            self.save(&mut doc, DocKind::Patrol, patrol_id)?;
        }
        pending.base_points += pending.points.len() as u64;
        pending.points.clear();
        self.store_pending(patrol_id, pending)
    }

    /// Edits a patrol as the signed-in user and saves it.
    fn edit_patrol(
        &self,
        patrol_id: &str,
        edit: impl FnOnce(&mut PatrolDoc) -> Result<()>,
    ) -> Result<()> {
        let (_, actor) = self.author()?;
        let _docs = self.lock_docs();
        let mut doc = self.patrol_doc(patrol_id, Some(&actor))?;
        edit(&mut doc)?;
        self.save(&mut doc, DocKind::Patrol, patrol_id)
    }

    /// The summary of a patrol: its record, track measures and validation under the rules of
    /// the reference data, with the points still buffered counted in.
    fn summary(&self, patrol: Patrol, mut points: Vec<TrackPoint>) -> Result<PatrolSummary> {
        if let Some(pending) = lock(&self.tracks).get(&patrol.id) {
            points.extend_from_slice(&pending.points);
        } else if let Some(bytes) = self.store.meta(&pending_key(&patrol.id))? {
            if let Some(pending) = PendingTrack::decode(&bytes)? {
                if pending.base_points == points.len() as u64 {
                    points.extend(pending.points);
                }
            }
        }
        let reference = self.account.reference()?;
        let session = self.account.session();
        let chief = session.as_ref().map(|s| &s.user.role);
        let validation = sync_core::rules::validate_patrol(
            &patrol,
            &points,
            chief,
            &reference.rules,
            &reference.assets,
            // A phone knows no more of its own clock than it says.
            &sync_core::rules::DeviceClock::default(),
        );
        let facts = self.local_facts(&patrol.id)?;
        Ok(PatrolSummary::of(
            patrol,
            &validation.stats,
            &validation,
            facts.photos_pending,
            facts.synced,
        ))
    }

    fn chief(&self) -> Result<Session> {
        let session = self.account.user()?;
        match session.user.role {
            Role::Chief { .. } => Ok(session),
            _ => Err(ChiefsyncError::Forbidden {
                detail: format!(
                    "{} is not a chief; only chiefs patrol",
                    session.user.username
                ),
            }),
        }
    }
}

impl PhoneApp {
    /// Starts a patrol of one of the chief's assets now; returns the patrol id.
    pub fn start_patrol(&self, asset_id: String) -> Result<String> {
        let session = self.chief()?;
        let actor = session.actor()?;
        let reference = self.account.reference()?;
        let asset = crate::session::jurisdiction_asset(&reference, &asset_id)?;
        let new = NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: session.user.id.clone(),
            division: asset.division.clone(),
            device: session.device_id.clone(),
            started_at_ms: self.now(),
        };
        let mut doc = PatrolDoc::create(actor, &new)?;
        let id = doc.id().to_owned();
        let _docs = self.lock_docs();
        self.save(&mut doc, DocKind::Patrol, &id)?;
        self.index_made(&id, doc.am());
        Ok(id)
    }

    /// Records one GPS fix. Cheap enough for 1 Hz: the fix is flushed to the store at once and
    /// reaches the document with the next ten minutes' change (or when the patrol ends).
    ///
    /// `mock` is the operating system's own verdict on the fix — Android's
    /// `Location.isMock()`, iOS's `sourceInformation.isSimulatedBySoftware` — and `provider` the
    /// OS's name for its source (`"gps"`, `"network"`, `"fused"`, `"passive"`; `"accessory"` for
    /// iOS's `isProducedByAccessory`; anything else is recorded as unknown). A patrol with mock
    /// fixes does not count, and says which share of its fixes were mock.
    #[allow(clippy::too_many_arguments)]
    pub fn add_track_point(
        &self,
        patrol_id: String,
        lat: f64,
        lon: f64,
        timestamp_ms: i64,
        accuracy_m: f32,
        mock: bool,
        provider: String,
    ) -> Result<()> {
        check_position(lat, lon)?;
        let mut tracks = lock(&self.tracks);
        let pending = match tracks.entry(patrol_id.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(self.pending_track(&patrol_id)?),
        };
        pending.points.push(TrackPoint {
            lat,
            lon,
            t_ms: timestamp_ms,
            accuracy_m,
            mock,
            provider: Provider::from_name(&provider),
        });
        if pending.points.len() >= CHANGE_POINTS {
            self.flush_track(&patrol_id, pending)
        } else {
            self.store_pending(&patrol_id, pending)
        }
    }

    /// Records a check item's result (`code` from `check_items()`), replacing an earlier one.
    pub fn set_check_item(
        &self,
        patrol_id: String,
        item: String,
        result: CheckResult,
        note: String,
    ) -> Result<()> {
        if item.trim().is_empty() {
            return Err(ChiefsyncError::invalid("check item code is empty"));
        }
        let now = self.now();
        self.edit_patrol(&patrol_id, |doc| {
            Ok(doc.set_check_item(&item, result, &note, now)?)
        })
    }

    /// Records that the phone reported a mock location (or clock skew …) during the patrol.
    pub fn set_patrol_flag(&self, patrol_id: String, flag: String, on: bool) -> Result<()> {
        if flag.trim().is_empty() {
            return Err(ChiefsyncError::invalid("flag name is empty"));
        }
        self.edit_patrol(&patrol_id, |doc| Ok(doc.set_flag(&flag, on)?))
    }

    /// Ends the patrol now with the chief's notes: the last buffered points go into the
    /// document, and the summary says whether the patrol counts and why not. Finishing a
    /// finished patrol changes nothing and returns its summary.
    pub fn finish_patrol(&self, patrol_id: String, notes: String) -> Result<PatrolSummary> {
        let finished = self
            .patrol_doc(&patrol_id, None)?
            .view()?
            .ended_at_ms
            .is_some();
        if !finished {
            let mut tracks = lock(&self.tracks);
            let mut pending = match tracks.remove(&patrol_id) {
                Some(pending) => pending,
                None => self.pending_track(&patrol_id)?,
            };
            if let Err(err) = self.flush_track(&patrol_id, &mut pending) {
                tracks.insert(patrol_id.clone(), pending);
                return Err(err);
            }
            let now = self.now();
            self.edit_patrol(&patrol_id, |doc| {
                doc.set_notes(&notes)?;
                Ok(doc.finish(now)?)
            })?;
            self.store.put_meta(&pending_key(&patrol_id), &[])?;
        }
        self.patrol(patrol_id)
    }

    /// One patrol on this device.
    pub fn patrol(&self, patrol_id: String) -> Result<PatrolSummary> {
        let doc = self.patrol_doc(&patrol_id, None)?;
        let points = doc.track()?;
        self.summary(doc.view()?, points)
    }

    /// Every patrol on this device, newest first.
    pub fn patrols(&self) -> Result<Vec<PatrolSummary>> {
        let mut out = Vec::new();
        for id in self.store.doc_ids(sync_core::store::DocKind::Patrol)? {
            out.push(self.patrol(id)?);
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.started_at_ms));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use sync_core::doc::Record;

    const T0: i64 = 1_764_291_600_000;

    fn walk(n: usize) -> Vec<TrackPoint> {
        track::walking_track(36.70, 117.00, T0, n, 3)
    }

    fn open(dir: &std::path::Path, base: &str) -> PhoneApp {
        PhoneApp::open(ClientConfig::new(dir, base)).unwrap()
    }

    fn add(phone: &PhoneApp, patrol: &str, points: &[TrackPoint]) {
        for p in points {
            phone
                .add_track_point(
                    patrol.into(),
                    p.lat,
                    p.lon,
                    p.t_ms,
                    p.accuracy_m,
                    p.mock,
                    p.provider.name().into(),
                )
                .unwrap();
        }
    }

    #[test]
    fn the_os_verdict_on_each_fix_reaches_the_patrol_and_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::test_server::start_demo_server(&dir.path().join("server"), 900);
        let phone = open(&dir.path().join("phone"), &base);
        let me = phone.login("demo-chief".into(), "demo".into()).unwrap();
        let patrol = phone.start_patrol(me.assets[0].clone()).unwrap();
        let mut points = walk(CHANGE_POINTS + 20);
        for (i, p) in points.iter_mut().enumerate() {
            p.provider = sync_core::model::Provider::Fused;
            // The last fifth of the walk came from a mock-location app, and Android said so.
            p.mock = i >= points_len_four_fifths(CHANGE_POINTS + 20);
        }
        add(&phone, &patrol, &points);
        let summary = phone.finish_patrol(patrol.clone(), String::new()).unwrap();
        let stored = phone.patrol_doc(&patrol, None).unwrap().track().unwrap();
        assert_eq!(stored.len(), points.len());
        assert!(stored
            .iter()
            .all(|p| p.provider == sync_core::model::Provider::Fused));
        let mock = stored.iter().filter(|p| p.mock).count();
        assert_eq!(mock, points.iter().filter(|p| p.mock).count());
        assert!(!summary.valid);
        let flag = summary
            .flags
            .iter()
            .find(|f| f.code == "mock_fixes")
            .unwrap_or_else(|| panic!("{:?}", summary.flags));
        assert!(
            flag.detail.contains(&format!("{mock} 个定位点")),
            "{}",
            flag.detail
        );
    }

    fn points_len_four_fifths(n: usize) -> usize {
        n * 4 / 5
    }

    #[test]
    fn a_chunk_saved_just_before_a_crash_is_not_appended_twice() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::test_server::start_demo_server(&dir.path().join("server"), 900);
        let phone_dir = dir.path().join("phone");
        let phone = open(&phone_dir, &base);
        let me = phone.login("demo-chief".into(), "demo".into()).unwrap();
        let patrol = phone.start_patrol(me.assets[0].clone()).unwrap();
        let points = walk(CHANGE_POINTS + 1);
        add(&phone, &patrol, &points[..CHANGE_POINTS]);
        let mut in_doc = phone.patrol_doc(&patrol, None).unwrap();
        assert_eq!(in_doc.track().unwrap().len(), CHANGE_POINTS);
        assert_eq!(
            in_doc.am_mut().get_changes(&[]).len(),
            2,
            "the patrol's start and its first ten minutes"
        );

        // The app died after the full buffer reached the document but before it was emptied:
        // the store still holds the buffer as it was before the change.
        let before = PendingTrack {
            base_points: 0,
            points: points[..CHANGE_POINTS].to_vec(),
        };
        phone
            .store()
            .put_meta(&pending_key(&patrol), &before.encode())
            .unwrap();
        drop(phone);

        let phone = open(&phone_dir, &base);
        add(&phone, &patrol, &points[CHANGE_POINTS..]);
        let summary = phone.finish_patrol(patrol.clone(), String::new()).unwrap();
        assert_eq!(summary.points, CHANGE_POINTS as u64 + 1);
        let stored = phone.patrol_doc(&patrol, None).unwrap().track().unwrap();
        let expected: Vec<TrackPoint> = points.iter().map(track::quantize).collect();
        assert_eq!(stored, expected);
    }

    #[test]
    fn the_buffer_round_trips_and_refuses_damage() {
        let pending = PendingTrack {
            base_points: 120,
            points: walk(7),
        };
        let back = PendingTrack::decode(&pending.encode()).unwrap().unwrap();
        assert_eq!(back.base_points, 120);
        assert_eq!(back.points.len(), 7);
        assert!(PendingTrack::decode(&[]).unwrap().is_none());
        let mut damaged = pending.encode();
        damaged.truncate(12);
        assert!(matches!(
            PendingTrack::decode(&damaged),
            Err(ChiefsyncError::Storage { .. })
        ));
    }
}
