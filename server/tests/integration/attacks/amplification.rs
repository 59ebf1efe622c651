//! Attacks: amplification.
