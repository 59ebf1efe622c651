//! The `chiefsync` binary's `create-admin` subcommand: the only way to get a first account
//! without `--demo`. The password comes from the environment or standard input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::harness::TestServer;

fn create_admin(
    dir: &std::path::Path,
    username: &str,
    env_password: Option<&str>,
    stdin: &str,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chiefsync"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["create-admin", "--username", username])
        .env_remove("CHIEFSYNC_ADMIN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = env_password {
        cmd.env("CHIEFSYNC_ADMIN_PASSWORD", password);
    }
    let mut child = cmd.spawn().expect("run chiefsync");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[actix_web::test]
async fn create_admin_from_env_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = create_admin(dir.path(), "root", Some("env-password-1"), "");
    assert!(
        from_env.status.success(),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );
    let from_stdin = create_admin(dir.path(), "ops-admin", None, "stdin-password-2\n");
    assert!(
        from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );
    let duplicate = create_admin(dir.path(), "ROOT", Some("env-password-3"), "");
    assert!(!duplicate.status.success());
    let short = create_admin(dir.path(), "tiny", Some("short"), "");
    assert!(!short.status.success());

    let s = TestServer::start_in(dir.path(), false).await;
    let root = s.login_reply("root", "env-password-1", "pc").await;
    assert_eq!(root.expect_ok()["user"]["role"]["kind"], "admin");
    s.login_reply("ops-admin", "stdin-password-2", "pc")
        .await
        .expect_ok();
    s.login_reply("tiny", "short", "pc")
        .await
        .expect_error(401, "invalid_credentials");
    assert_eq!(s.state.store.list_users().unwrap().len(), 2);
    s.stop().await;
}
