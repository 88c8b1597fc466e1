//! Reporter authentication: tokens (only their SHA-256 is kept), argon2id passwords hashed
//! at most two at a time, and the rate limits on failed authentications.

pub mod password;
pub mod ratelimit;
pub mod tokens;
