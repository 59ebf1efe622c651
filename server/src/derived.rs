//! What the board, the patrol list and reminders work out from stored documents, and how much
//! of it a request did.

/// Work done for one request: documents loaded from the store, issues folded into their
/// workflow state, patrols validated, and duplicate candidates compared. Exposed as the
/// `chiefsync_board_work` metric, so an office can see that a page costs a page.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub loaded: u64,
    pub folded: u64,
    pub validated: u64,
    pub compared: u64,
}

impl Work {
    pub fn named(&self) -> [(&'static str, u64); 4] {
        [
            ("loaded", self.loaded),
            ("folded", self.folded),
            ("validated", self.validated),
            ("compared", self.compared),
        ]
    }
}
