//! Creating user records: the one place that checks usernames, passwords and ids, used by the
//! admin API, the `create-admin` command and the demo. It hashes but does not store.

use sync_core::model::{Role, User};

use crate::auth::password::{Passwords, MIN_PASSWORD_CHARS};
use crate::error::ApiError;
use crate::storage::UserRecord;

const MAX_USERNAME_CHARS: usize = 64;

/// Usernames are 3–64 characters of ASCII letters, digits, `.`, `_` and `-`.
pub fn check_username(username: &str) -> Result<(), ApiError> {
    let ok = (3..=MAX_USERNAME_CHARS).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "username must be 3-{MAX_USERNAME_CHARS} characters of letters, digits, '.', '_', '-'"
        )))
    }
}

pub fn check_password(password: &str) -> Result<(), ApiError> {
    if sync_core::api_types::password_long_enough(password) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )))
    }
}

/// A new active user with a fresh UUIDv7 id and the given password hashed.
pub fn new_user(
    passwords: &Passwords,
    username: &str,
    display_name: &str,
    role: Role,
    password: &str,
    now_ms: i64,
) -> Result<UserRecord, ApiError> {
    check_username(username)?;
    check_password(password)?;
    let password_hash = passwords
        .hash(password)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(UserRecord {
        user: User {
            id: uuid::Uuid::now_v7().to_string(),
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            role,
            active: true,
        },
        password_hash: Some(password_hash),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(check_username("demo-chief").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("河长").is_err());
        assert!(check_username("a b c").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
    }
}
