//! The `Caller` extractor: a request's bearer token checked in full (see `jwt`), then the user
//! must exist and be active and the token's device session must still be live. Any failure is a
//! 401 with a JSON body; role checks are left to the handlers.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use sync_core::model::{Role, User};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::storage::DeviceRecord;

/// An authenticated user on a live device.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub device: DeviceRecord,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.user.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::Forbidden("administrators only".into())),
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(ErrorCode::MissingToken, "no Authorization header")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::InvalidToken, "expected a Bearer token"))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            let claims = state.tokens.verify(&token?)?;
            let store = state.store.clone();
            let (user, device) =
                web::block(move || store.user_and_device(&claims.sub, &claims.dev)).await??;
            let user = user.filter(|u| u.user.active).ok_or_else(|| {
                ApiError::unauthorized(ErrorCode::UserInactive, "account is not active")
            })?;
            let device = device.filter(|d| d.accepts(claims.sess)).ok_or_else(|| {
                ApiError::unauthorized(ErrorCode::DeviceRevoked, "this device's session has ended")
            })?;
            Ok(Caller {
                user: user.user,
                device,
            })
        })
    }
}
