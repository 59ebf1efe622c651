//! Attacks: proportional.
