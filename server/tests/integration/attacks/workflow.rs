//! Attacks: workflow.
