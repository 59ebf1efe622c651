//! The reference data of a jurisdiction is one type, `sync_core::api_types::ReferenceData`: the
//! server fills it for `GET /reference` and the phone keeps it. Against a real demo server, the
//! body the server sends reads into that type and writes back to the very same JSON (no field
//! the phone would drop or miss), and the phone offers exactly the assets, categories and check
//! items the server sent.

mod common;

use mobile_ffi::{ClientConfig, FieldClient};
use serde_json::Value;
use sync_core::api_types::ReferenceData;

/// The body of `GET /reference` for `user`, signed in as a desk would.
fn reference_body(base: &str, user: &str) -> Value {
    let grant: Value = ureq::post(format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({
            "username": user,
            "password": "demo",
            "device_id": "reference-test",
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let token = grant["access_token"].as_str().unwrap();
    ureq::get(format!("{base}/api/v1/reference"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

#[test]
fn the_phone_reads_the_servers_reference_data_through_the_one_type() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    for user in ["demo-chief", "demo-forest-chief"] {
        let sent = reference_body(&base, user);
        let read: ReferenceData = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            sent,
            "{user}: the shared type must carry every field the server sends"
        );
        assert!(
            !read.assets.is_empty() && !read.categories.is_empty(),
            "{user}"
        );

        let phone = FieldClient::open(ClientConfig::new(dir.path().join(user), base.clone()))
            .expect("open the phone's store");
        phone.login(user.into(), "demo".into()).unwrap();
        let ids = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(
            ids(phone.assets().unwrap().into_iter().map(|a| a.id).collect()),
            ids(read.assets.iter().map(|a| a.id.clone()).collect()),
            "{user}: assets"
        );
        assert_eq!(
            ids(phone
                .categories()
                .unwrap()
                .into_iter()
                .map(|c| c.code)
                .collect()),
            ids(read.categories.iter().map(|c| c.code.clone()).collect()),
            "{user}: categories"
        );
        assert_eq!(
            ids(phone
                .check_items()
                .unwrap()
                .into_iter()
                .map(|c| c.code)
                .collect()),
            ids(read.check_items.iter().map(|c| c.code.clone()).collect()),
            "{user}: check items"
        );
        // The phone starts a patrol only on an asset of the reference data it holds.
        assert!(read.asset(&read.assets[0].id).is_some());
        let refused = phone.start_patrol("no-such-asset".into()).unwrap_err();
        assert!(
            refused.to_string().contains("not in your jurisdiction"),
            "{refused}"
        );
    }
}
