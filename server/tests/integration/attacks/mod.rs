//! The attack suite: each test is an attack a hostile insider (or a stranger) can make through
//! the real HTTP endpoints, and asserts what the server does now. RELIABILITY.md lists them
//! under "Attacks" with their commands.

mod accounts;
mod amplification;
mod drops;
mod evidence;
mod proportional;
mod workflow;
