//! The server on PostgreSQL (`--database`): two servers on one database serve the same phones,
//! a sign-in on one and a sync on the other. Each test creates a database of its own on the
//! server named by `CHIEFSYNC_TEST_POSTGRES` and drops it afterwards; without it the tests say
//! `skipped:` and pass.

use serde_json::Value;
use server::demo::{CHIEF, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::model::{DivisionCode, Severity, System};

use crate::harness::TestServer;
use crate::phone::Phone;

/// A database of the test's own; dropped when this drops.
pub(crate) struct Database {
    admin: String,
    name: String,
    pub(crate) url: String,
}

/// Runs each statement on a connection of its own, on a thread of its own (the test's runtime
/// is busy). `Err` only when the server cannot be reached; a statement that fails panics.
pub(crate) fn admin_sql(url: &str, statements: Vec<String>) -> Result<(), tokio_postgres::Error> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            for sql in statements {
                client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Ok(())
        })
    })
    .join()
    .expect("admin thread")
}

impl Database {
    pub(crate) fn create(test: &str) -> Option<Self> {
        let Some(admin) = std::env::var("CHIEFSYNC_TEST_POSTGRES")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            println!("skipped: CHIEFSYNC_TEST_POSTGRES is not set (a postgres:// address)");
            return None;
        };
        let name = format!("chiefsync_it_{test}_{}", std::process::id());
        if let Err(err) = admin_sql(
            &admin,
            vec![
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ],
        ) {
            println!("skipped: PostgreSQL at CHIEFSYNC_TEST_POSTGRES is not reachable: {err}");
            return None;
        }
        // The same server and user, this database (the address ends in its database name).
        let (server, _) = admin
            .rsplit_once('/')
            .expect("postgres://user:password@host:port/database");
        let url = format!("{server}/{name}");
        Some(Self { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = admin_sql(
            &self.admin,
            vec![format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )],
        );
    }
}

pub(crate) async fn issue_row(s: &TestServer, token: &str, text: &str) -> Option<Value> {
    let page = s.get("/api/v1/issues?limit=500", token).await;
    page.expect_ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["description"].as_str().unwrap_or("").starts_with(text))
        .cloned()
}

#[actix_web::test]
async fn two_servers_on_one_database_serve_the_same_phones() {
    let Some(db) = Database::create("two_servers") else {
        return;
    };
    let url = db.url.clone();
    let a = TestServer::demo_with(|s| s.database = Some(url.clone())).await;
    // The second server finds the demo already there.
    let b = TestServer::demo_with(|s| s.database = Some(url.clone())).await;

    // A chief signs in on server A and reports a problem from the phone.
    let phone = Phone::login(&a, CHIEF, "chief-phone").await;
    let supervisor = a.token(SUPERVISOR, "desk").await;
    // Reported where a demo problem in the chief's river was.
    let template = issue_row(&a, &supervisor, "河面漂浮生活垃圾")
        .await
        .expect("the demo problem");
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms(),
        &NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: template["asset"].as_str().unwrap().into(),
            division: DivisionCode::new(template["division"].as_str().unwrap()).unwrap(),
            location: [
                template["location"][0].as_f64().unwrap() + 0.001,
                template["location"][1].as_f64().unwrap(),
            ],
            description: "数据库同步测试：河面漂浮物".into(),
            patrol: None,
        },
    )
    .unwrap();
    let id = issue.id().to_string();
    phone.save(&mut issue);
    let sent = phone.sync(now_ms()).await;
    assert_eq!(sent.docs_sent, 1, "{sent:?}");

    // The supervisor's token from A works on B (no sticky sessions), and B lists the report.
    let row = issue_row(&b, &supervisor, "数据库同步测试").await;
    assert_eq!(row.expect("listed on B")["id"], id.as_str());

    // The chief's second phone signs in on B and receives the report there.
    let tablet = Phone::login(&b, CHIEF, "chief-tablet").await;
    tablet.sync(now_ms()).await;
    let received = tablet
        .issue(&id)
        .expect("the report reached the tablet through B");
    assert_eq!(
        received.view().unwrap().description,
        "数据库同步测试：河面漂浮物"
    );

    // A wrong password is refused on either server alike.
    b.login_reply(CHIEF, "not-the-password", "chief-phone")
        .await
        .expect_error(401, "invalid_credentials");
    a.stop().await;
    b.stop().await;
    drop(db);
}
