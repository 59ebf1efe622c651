//! Who is signed in on this device, with which tokens and actor id, and the reference data of
//! their jurisdiction: kept in the device store so the app works offline after a restart.
//!
//! The access token is refreshed when the server says it expired, and the rotated pair is
//! stored before it is used: the server revokes a device that presents a spent refresh token,
//! so losing the new pair to a crash would sign the chief out. This module holds no domain logic.

use std::sync::{Arc, Mutex, MutexGuard};

use automerge::ActorId;
use serde::{Deserialize, Serialize};
use sync_core::doc::parse_actor;
use sync_core::model::{Asset, User};
use sync_core::store::LocalStore;

use crate::error::{ChiefsyncError, Result};
use crate::http::{Api, Grant};

const SESSION_KEY: &str = "ffi.session";
const DEVICE_KEY: &str = "ffi.device_id";
const REFERENCE_KEY: &str = "ffi.reference";
const REFERENCE_TAG_KEY: &str = "ffi.reference_etag";

/// The signed-in user and their tokens, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: User,
    pub device_id: String,
    pub actor_id: String,
    /// Empty after `logout`: the user's unsynced work stays, but nothing is sent.
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    pub fn actor(&self) -> Result<ActorId> {
        Ok(parse_actor(&self.actor_id)?)
    }

    pub fn signed_in(&self) -> bool {
        !self.access_token.is_empty()
    }
}

/// The reference data of the user's jurisdiction: sync-core's wire type, the one the server
/// sends from `GET /reference`.
pub use sync_core::api_types::ReferenceData as Reference;

/// The asset `asset_id` of the jurisdiction, or an error telling the user to sync.
pub fn jurisdiction_asset<'a>(reference: &'a Reference, asset_id: &str) -> Result<&'a Asset> {
    reference.asset(asset_id).ok_or_else(|| {
        ChiefsyncError::invalid(format!(
            "asset {asset_id} is not in your jurisdiction's reference data (sync to refresh it)"
        ))
    })
}

/// The session and the reference data over the device store.
#[derive(Debug)]
pub struct Account {
    store: Arc<LocalStore>,
    api: Api,
    /// Held across a refresh so two threads never both spend the same refresh token.
    session: Mutex<Option<Session>>,
    reference: Mutex<Option<Arc<Reference>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks is replaced whole, never left half-written by a panic.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Account {
    /// `device_id`: the id the app gives this installation, kept from its first start; `None`
    /// lets the phone choose one. A store that already has another id is refused: the server
    /// binds the actor of the work in it to that id.
    pub fn open(store: Arc<LocalStore>, api: Api, device_id: Option<&str>) -> Result<Self> {
        if let Some(id) = device_id {
            match store.meta(DEVICE_KEY)? {
                None => store.put_meta(DEVICE_KEY, id.as_bytes())?,
                Some(held) if held == id.as_bytes() => {}
                Some(held) => {
                    return Err(ChiefsyncError::invalid(format!(
                        "this phone's store belongs to device {}, not {id}",
                        String::from_utf8_lossy(&held)
                    )))
                }
            }
        }
        let session = match store.meta(SESSION_KEY)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => None,
        };
        Ok(Account {
            store,
            api,
            session: Mutex::new(session),
            reference: Mutex::new(None),
        })
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    /// This installation's device id, chosen once and kept.
    pub fn device_id(&self) -> Result<String> {
        if let Some(bytes) = self.store.meta(DEVICE_KEY)? {
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        let id = format!("phone-{}", sync_core::doc::new_doc_id());
        self.store.put_meta(DEVICE_KEY, id.as_bytes())?;
        Ok(id)
    }

    /// The stored session, signed in or not.
    pub fn session(&self) -> Option<Session> {
        lock(&self.session).clone()
    }

    /// The session of a signed-in user, or `NotLoggedIn`.
    pub fn signed_in(&self) -> Result<Session> {
        self.session()
            .filter(Session::signed_in)
            .ok_or_else(ChiefsyncError::not_logged_in)
    }

    /// The user whose documents this device holds, signed in or not: edits made offline after
    /// the tokens lapsed still need the user and the actor.
    pub fn user(&self) -> Result<Session> {
        self.session().ok_or_else(ChiefsyncError::not_logged_in)
    }

    fn store_session(&self, slot: &mut Option<Session>, session: Session) -> Result<()> {
        self.store
            .put_meta(SESSION_KEY, &serde_json::to_vec(&session)?)?;
        *slot = Some(session);
        Ok(())
    }

    fn session_of(grant: Grant) -> Session {
        Session {
            user: grant.user,
            device_id: grant.device_id,
            actor_id: grant.actor_id,
            access_token: grant.access_token,
            refresh_token: grant.refresh_token,
        }
    }

    /// Signs in with the grant `grant` obtains for this device id (a login, or a first
    /// sign-in with a setup code). `may_switch` decides whether another user than the stored
    /// one may take over the device (the caller checks for unsynced work).
    pub fn sign_in(
        &self,
        grant: impl FnOnce(&Api, &str) -> Result<Grant>,
        may_switch: impl FnOnce(&Session) -> Result<()>,
    ) -> Result<Session> {
        let device_id = self.device_id()?;
        let grant = grant(&self.api, &device_id)?;
        parse_actor(&grant.actor_id)?;
        let mut slot = lock(&self.session);
        if let Some(old) = slot.as_ref() {
            if old.user.id != grant.user.id {
                may_switch(old)?;
                self.store.put_meta(REFERENCE_TAG_KEY, b"")?;
                *lock(&self.reference) = None;
            }
        }
        let session = Self::session_of(grant);
        self.store_session(&mut slot, session.clone())?;
        Ok(session)
    }

    /// Forgets the tokens; the user, the actor and all recorded work stay on the device.
    pub fn logout(&self) -> Result<()> {
        let mut slot = lock(&self.session);
        if let Some(mut session) = slot.clone() {
            session.access_token.clear();
            session.refresh_token.clear();
            self.store_session(&mut slot, session)?;
        }
        Ok(())
    }

    /// Runs `call` with the access token; if the server says the token expired, refreshes the
    /// pair once and runs it again.
    pub fn authorized<T>(&self, mut call: impl FnMut(&str) -> Result<T>) -> Result<T> {
        let session = self.signed_in()?;
        match call(&session.access_token) {
            Err(err) if err.is_expired_token() => {
                let token = self.refresh(&session.access_token)?;
                call(&token)
            }
            other => other,
        }
    }

    /// Exchanges the refresh token for a new pair, unless another thread already did (the
    /// stored access token is no longer `stale`). Returns the current access token.
    fn refresh(&self, stale: &str) -> Result<String> {
        let mut slot = lock(&self.session);
        let current = slot
            .clone()
            .filter(Session::signed_in)
            .ok_or_else(ChiefsyncError::not_logged_in)?;
        if current.access_token != stale {
            return Ok(current.access_token);
        }
        let grant = self.api.refresh(&current.refresh_token)?;
        let session = Self::session_of(grant);
        let token = session.access_token.clone();
        self.store_session(&mut slot, session)?;
        Ok(token)
    }

    /// The cached reference data (empty before the first download).
    pub fn reference(&self) -> Result<Arc<Reference>> {
        let mut slot = lock(&self.reference);
        if let Some(reference) = slot.as_ref() {
            return Ok(reference.clone());
        }
        let reference = Arc::new(match self.store.meta(REFERENCE_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => Reference::default(),
        });
        *slot = Some(reference.clone());
        Ok(reference)
    }

    /// Downloads the reference data unless the stored copy is current; returns whether it
    /// changed.
    pub fn refresh_reference(&self) -> Result<bool> {
        let etag = self
            .store
            .meta(REFERENCE_TAG_KEY)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|t| !t.is_empty());
        let fetched = self.authorized(|token| self.api.reference(token, etag.as_deref()))?;
        let Some((bytes, tag)) = fetched else {
            return Ok(false);
        };
        let reference: Reference =
            serde_json::from_slice(&bytes).map_err(|e| ChiefsyncError::Server {
                status: 200,
                code: "bad_reference".into(),
                detail: e.to_string(),
            })?;
        self.store.put_meta(REFERENCE_KEY, &bytes)?;
        self.store
            .put_meta(REFERENCE_TAG_KEY, tag.unwrap_or_default().as_bytes())?;
        *lock(&self.reference) = Some(Arc::new(reference));
        Ok(true)
    }
}
