//! Attacks: accounts.
