//! The verification WebSocket (spec section 7): a voter in the booth confirms or corrects
//! what reporters recorded about them. `hub` decides (matching, timeouts); this module
//! runs it: one actor task owns the hub, each connection has a task that reads the
//! socket and one that writes it, and verifications go through the single writer like
//! every other write.

pub mod hub;
