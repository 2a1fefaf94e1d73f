//! The process-wide tokio runtime. Java threads block on it for the length of one KMS call; the
//! runtime's own threads drive the HTTP connections that every call shares.

use std::future::Future;

use once_cell::sync::OnceCell;
use tokio::runtime::Runtime;

use crate::error::{Error, Result};

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            // Two workers are plenty: they only shuttle bytes, the waiting happens in KMS.
            .worker_threads(2)
            .thread_name("aws-kms-io")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("Could not start the I/O runtime: {e}")))
    })
}

/// Runs a future to completion from a thread that is not a runtime thread (a Java thread).
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Blocking a runtime thread would deadlock the runtime; callers come from Java threads.
        return Err(Error::internal(
            "block_on called from inside the I/O runtime",
        ));
    }
    Ok(runtime()?.block_on(future))
}
