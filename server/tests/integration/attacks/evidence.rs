//! Attacks: evidence.
