//! Attacks through a phone's drops (`SyncRequest::dropped`): telling the server a document left
//! the phone must not undo what the server knows the phone had seen of it.

use server::demo::{CHIEF, SUPERVISOR};

use super::workflow::{
    assigned_from_a_phone, rectification_stamped_before_the_assignment, reported,
};
use crate::harness::TestServer;
use crate::phone::Phone;

/// A modified phone receives an assignment and its receipt, drops the problem (a sync that
/// pushes something else, so no sync of its own vouches for the time), then sends a
/// rectification built on the assignment alone and stamped before the receipt. The server
/// sent the phone that receipt: the rectification counts no earlier than it.
#[actix_web::test]
async fn dropping_a_problem_does_not_lower_the_time_its_events_count_from() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let office = Phone::login(&s, SUPERVISOR, "sup-phone").await;
    let (id, assigned) = assigned_from_a_phone(&s, &sup, &office, &chief, "丢弃后补记测试").await;

    // The chief's next syncs each push a new report: the assignment and its receipt arrive
    // with the first, the drop goes up with the second.
    reported(&chief, "另一处垃圾").await;
    let held = chief.issue(&id).expect("the assignment reached the chief");
    assert_eq!(chief.drop_docs(std::slice::from_ref(&id)), vec![id.clone()]);
    reported(&chief, "第三处垃圾").await;
    assert!(chief.issue(&id).is_none(), "dropped");

    let last =
        rectification_stamped_before_the_assignment(&s, &sup, &chief, &id, held, &assigned).await;
    assert!(
        last["counted_at_ms"].as_i64().unwrap() >= assigned.received_at,
        "counted before the assignment it answers reached the chief: {last}"
    );
    s.stop().await;
}
