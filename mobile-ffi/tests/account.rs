//! Signing a phone in, against a real demo server: the first sign-in of someone the office
//! set up with a one-time code (a password too short, a wrong code and a spent code each a
//! typed error), and a device id the app brings itself.

mod common;

use std::time::Duration;

use mobile_ffi::{ChiefsyncError, ClientConfig, FieldClient};
use serde_json::Value;

/// Someone the office hands a code: the demo's field chief, whom no other test here signs in.
const USER: &str = "demo-field-chief";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The office issues `username` a one-time setup code (`POST /admin/users/{id}/setup-code`).
fn issue_setup_code(base: &str, username: &str) -> String {
    let grant: Value = agent()
        .post(format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({
            "username": "demo-admin", "password": "demo", "device_id": "office-desk",
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let token = grant["access_token"].as_str().expect("admin token");
    let mut reply = agent()
        .post(format!("{base}/api/v1/admin/users/u-{username}/setup-code"))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty()
        .unwrap();
    assert_eq!(reply.status(), 200);
    let view: Value = reply.body_mut().read_json().unwrap();
    view["code"].as_str().expect("a setup code").to_owned()
}

#[test]
fn a_first_sign_in_with_a_setup_code_sets_the_password_and_signs_the_phone_in() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let code = issue_setup_code(&base, USER);
    let phone = FieldClient::new(
        dir.path().join("phone").to_string_lossy().into_owned(),
        base.clone(),
    )
    .unwrap();

    // Too short: refused on the phone, before anything is sent.
    let err = phone
        .setup_password(USER.into(), code.clone(), "1234567".into())
        .unwrap_err();
    assert!(
        matches!(err, ChiefsyncError::WeakPassword { min_chars: 8, .. }),
        "{err:?}"
    );
    assert_eq!(phone.traffic().requests, 0, "nothing went to the server");
    // A Chinese passphrase counts by its characters, not its bytes.
    let password = "河长巡河护水每日";

    // A wrong code, the right code with another username: the same typed answer.
    let err = phone
        .setup_password(USER.into(), "AAAA-BBBB-CCCC".into(), password.into())
        .unwrap_err();
    assert!(
        matches!(err, ChiefsyncError::InvalidSetupCode { .. }),
        "{err:?}"
    );
    let err = phone
        .setup_password("demo-forest-chief".into(), code.clone(), password.into())
        .unwrap_err();
    assert!(
        matches!(err, ChiefsyncError::InvalidSetupCode { .. }),
        "{err:?}"
    );
    assert!(matches!(
        phone.me(),
        Err(ChiefsyncError::NotLoggedIn { .. })
    ));

    // The code as the office printed it, in lower case: signed in, with the reference data.
    let me = phone
        .setup_password(USER.into(), code.to_lowercase(), password.into())
        .unwrap();
    assert_eq!(me.username, USER);
    assert!(
        !phone.assets().unwrap().is_empty(),
        "reference data came down"
    );
    assert!(phone.sync().unwrap().errors.is_empty());

    // The code is spent; the chosen password is the password now, the demo one is not.
    let other = FieldClient::new(
        dir.path().join("other").to_string_lossy().into_owned(),
        base.clone(),
    )
    .unwrap();
    let err = other
        .setup_password(USER.into(), code, password.into())
        .unwrap_err();
    assert!(
        matches!(err, ChiefsyncError::InvalidSetupCode { .. }),
        "{err:?}"
    );
    assert!(matches!(
        other.login(USER.into(), "demo".into()),
        Err(ChiefsyncError::Auth { .. })
    ));
    assert_eq!(
        other.login(USER.into(), password.into()).unwrap().username,
        USER
    );
    // The phone that set the password stays signed in.
    assert!(phone.sync().is_ok());
}

#[test]
fn a_device_id_the_app_brings_is_the_one_the_server_binds_and_stays_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let data = dir.path().join("phone");
    let config = ClientConfig {
        device_id: Some("office-tag-0042".into()),
        ..ClientConfig::new(&data, &base)
    };
    let phone = FieldClient::open(config).unwrap();
    let me = phone.login("demo-chief".into(), "demo".into()).unwrap();
    assert_eq!(me.device_id, "office-tag-0042");
    drop(phone);

    // Reopened without an id, the store keeps its own; with another one it is refused.
    let phone = FieldClient::open(ClientConfig::new(&data, &base)).unwrap();
    assert_eq!(phone.me().unwrap().device_id, "office-tag-0042");
    drop(phone);
    let config = ClientConfig {
        device_id: Some("someone-elses-phone".into()),
        ..ClientConfig::new(&data, &base)
    };
    let err = FieldClient::open(config).unwrap_err();
    assert!(
        matches!(&err, ChiefsyncError::InvalidInput { detail } if detail.contains("office-tag-0042")),
        "{err:?}"
    );
}
