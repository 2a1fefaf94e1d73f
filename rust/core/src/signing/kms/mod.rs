//! Calls to AWS KMS, one concern a file:
//! - [`clients`]: a client per connection (region, endpoint, credentials) and how its credentials
//!   are obtained; shared by the keys that use it, dropped with the last of them.
//! - [`calls`]: one logical call under a deadline, its retries, and the operations we make.
//! - [`credentials`]: expiring credentials held in memory and refreshed ahead of expiry by a
//!   background task per client.
//! - [`direct_http`]: the HTTP/1.1 client of KMS calls made without a proxy: blocking I/O on the
//!   calling thread over a pool of kept-alive connections.
//! - [`budget`]: the retry budget (token bucket) each client's calls share.
//! - [`errors`]: every SDK failure mapped to an [`ErrorKind`](crate::ErrorKind) and a message an
//!   administrator can act on; transient credentials failures get the transient kinds.

pub mod budget;
pub mod calls;
pub mod clients;
pub mod credentials;
pub(crate) mod direct_http;
pub(crate) mod errors;

pub use calls::Timeouts;
pub use clients::{ClientPool, KmsClient, SharedClient};
