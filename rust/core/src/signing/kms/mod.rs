//! Calls to AWS KMS, one concern a file:
//! - [`clients`]: a client per connection (region, endpoint, credentials) and how its credentials
//!   are obtained; shared by the keys that use it, dropped with the last of them.
//! - [`calls`]: one logical call under a deadline, its retries, and the operations we make.
//! - [`errors`]: every SDK failure mapped to an [`ErrorKind`](crate::ErrorKind) and a message an
//!   administrator can act on.

pub mod calls;
pub mod clients;
pub(crate) mod errors;

pub use calls::Timeouts;
pub use clients::{ClientPool, SharedClient};
