//! The process-wide tokio runtime. Java threads block on it for the length of one call; its own
//! threads drive timers, JWKS downloads and credentials refreshes. A KMS call's HTTP exchange is
//! not among them: it is blocking I/O on the calling thread (`signing::kms::direct_http`).
//!
//! Lifecycle: started by the first call that needs it, stopped at most once by [`stop`] (the
//! library's `JNI_OnUnload`), within a bound whatever calls are in flight: their connections and
//! timers end with the runtime, so each of them returns an error instead of waiting for a JWKS
//! server (a KMS exchange in flight ends by its own deadline). Once stopped, calls fail at once;
//! the runtime is never started again.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

/// The runtime of the process.
static RUNTIME: IoRuntime = IoRuntime::named("aws-kms-io");

/// Runs a future to completion from a thread that is not a runtime thread (a Java thread).
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    RUNTIME.block_on(future)
}

/// Stops the process's runtime, waiting at most `grace` for its threads; see [`IoRuntime::stop`].
pub fn stop(grace: Duration) -> bool {
    RUNTIME.stop(grace)
}

/// A tokio runtime started on first use and stopped once, with a bound. One instance serves
/// the process ([`block_on`], [`stop`]); tests make their own.
///
/// Every KMS call goes through [`IoRuntime::block_on`], so its path takes no lock: the handle is
/// set once and read as is, and the stop is a flag. The lock only orders start and stop.
#[derive(Debug)]
pub struct IoRuntime {
    /// The name of its threads (at most 15 bytes to be seen whole in `/proc`).
    thread_name: &'static str,
    /// Set by the start. Kept after the stop (it is only the scheduler's shell, its threads are
    /// gone), which `stopped` makes unreachable.
    handle: OnceLock<Handle>,
    stopped: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    NotStarted,
    Running(Runtime),
    Stopped,
}

impl IoRuntime {
    /// A runtime, with threads of that name, that starts with the first [`IoRuntime::block_on`].
    pub const fn named(thread_name: &'static str) -> IoRuntime {
        IoRuntime {
            thread_name,
            handle: OnceLock::new(),
            stopped: AtomicBool::new(false),
            state: Mutex::new(State::NotStarted),
        }
    }

    /// Runs a future to completion on the calling thread, its I/O and timers driven by the
    /// runtime. Fails at once when called from a runtime thread (that would deadlock) or after
    /// [`IoRuntime::stop`]; a call the stop catches in flight fails with `INTERNAL`.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        if Handle::try_current().is_ok() {
            // Blocking a runtime thread would deadlock the runtime; callers come from Java threads.
            return Err(Error::internal(
                "block_on called from inside the I/O runtime",
            ));
        }
        let handle = match self.handle.get() {
            Some(handle) => handle,
            None => self.start()?,
        };
        if self.is_stopped() {
            return Err(stopped());
        }
        // A stop while the future runs ends its connections (their tasks are dropped) and its
        // timers; tokio's timers panic when polled after their driver is gone. Either way the
        // call is over: report that, not a panic.
        match panic::catch_unwind(AssertUnwindSafe(|| handle.block_on(future))) {
            Ok(output) => Ok(output),
            Err(_) if self.is_stopped() => Err(stopped()),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Stops the runtime: its worker and blocking threads are asked to end, and this waits at
    /// most `grace` for them (a thread stuck in a blocking call, e.g. a DNS lookup, is left
    /// behind rather than waited for). Calls in flight end with an error; later calls fail at
    /// once. Returns whether a running runtime was stopped (false: never started, or stopped
    /// already).
    pub fn stop(&self, grace: Duration) -> bool {
        let previous = {
            let mut state = self.lock();
            self.stopped.store(true, Ordering::Release);
            std::mem::replace(&mut *state, State::Stopped)
        };
        match previous {
            State::Running(runtime) => {
                // Outside the lock: a concurrent call sees the stop at once.
                runtime.shutdown_timeout(grace);
                true
            }
            State::NotStarted | State::Stopped => false,
        }
    }

    /// Whether [`IoRuntime::stop`] has been called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The first call's start; under the lock, so that two first calls start one runtime and a
    /// stop never races a start.
    fn start(&self) -> Result<&Handle> {
        let mut state = self.lock();
        if let State::NotStarted = *state {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                // Two workers are plenty: they only shuttle JWKS bytes and fire timers.
                .worker_threads(2)
                .thread_name(self.thread_name)
                .enable_all()
                .build()
                .map_err(|e| Error::internal(format!("Could not start the I/O runtime: {e}")))?;
            // Only this branch sets it, once: the state leaves NotStarted for good below.
            let _ = self.handle.set(runtime.handle().clone());
            *state = State::Running(runtime);
        }
        match &*state {
            State::Running(_) => self.handle.get().ok_or_else(stopped),
            State::NotStarted | State::Stopped => Err(stopped()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn stopped() -> Error {
    Error::internal("The native I/O runtime has stopped (the library is being unloaded)")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Instant;

    use super::*;

    /// A bound on a call like the product's (every remote call has a deadline), far away.
    const FAR: Duration = Duration::from_secs(600);

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|task| task.ok())
                    .filter(|task| {
                        std::fs::read_to_string(task.path().join("comm"))
                            .is_ok_and(|comm| comm.trim() == name)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits (bounded) until `count` threads have that name; returns how many have it.
    fn await_threads_named(name: &str, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(3);
        while threads_named(name) != count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        threads_named(name)
    }

    fn in_flight<T: Send + 'static>(
        runtime: &Arc<IoRuntime>,
        call: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<Result<T>> {
        let runtime = Arc::clone(runtime);
        std::thread::spawn(move || runtime.block_on(call))
    }

    #[test]
    fn a_stop_ends_hung_calls_and_returns_within_its_bound() {
        let runtime = Arc::new(IoRuntime::named("rt-stop-hung"));
        // A server that accepts and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = [0_u8; 64];
            // Ends when the stop closes the client's side of the connection.
            while stream.read(&mut buffer).is_ok_and(|read| read > 0) {}
        });
        let reading = in_flight(&runtime, async move {
            use tokio::io::AsyncReadExt;
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let mut buffer = [0_u8; 64];
            stream.read(&mut buffer).await
        });
        let sleeping = in_flight(&runtime, async { tokio::time::sleep(FAR).await });
        // A blocking task that never ends (a stuck DNS lookup), awaited under a deadline.
        let blocked = in_flight(&runtime, async {
            let stuck = tokio::task::spawn_blocking(|| std::thread::sleep(FAR));
            tokio::time::timeout(FAR, stuck).await
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!reading.is_finished() && !sleeping.is_finished() && !blocked.is_finished());

        let started = Instant::now();
        assert!(runtime.stop(Duration::from_millis(500)));
        let stop_took = started.elapsed();
        assert!(
            stop_took < Duration::from_secs(2),
            "stop took {stop_took:?}"
        );

        // Every call in flight returned, none panicked: an error of its own I/O, or `stopped`.
        let read = reading.join().expect("no panic");
        assert!(!matches!(read, Ok(Ok(_))), "{read:?}");
        let slept = sleeping.join().expect("no panic");
        assert!(slept.is_err(), "{slept:?}");
        let waited = blocked.join().expect("no panic");
        assert!(!matches!(waited, Ok(Ok(Ok(())))), "{waited:?}");
        let all_took = started.elapsed();
        assert!(all_took < Duration::from_secs(3), "calls took {all_took:?}");
        server.join().expect("server");
    }

    #[test]
    fn after_a_stop_calls_fail_at_once_and_a_second_stop_does_nothing() {
        let runtime = IoRuntime::named("rt-stop-twice");
        assert_eq!(runtime.block_on(async { 7 }).expect("runs"), 7);
        assert!(runtime.stop(Duration::from_secs(1)));
        assert!(runtime.is_stopped());
        let error = runtime.block_on(async { 7 }).expect_err("stopped");
        assert!(error.message().contains("stopped"), "{}", error.message());
        assert!(!runtime.stop(Duration::from_secs(1)));
    }

    #[test]
    fn a_runtime_never_started_stops_without_starting() {
        let runtime = IoRuntime::named("rt-never");
        assert!(!runtime.stop(Duration::from_secs(1)));
        assert!(runtime.block_on(async {}).is_err());
        assert_eq!(threads_named("rt-never"), 0);
    }

    #[test]
    fn a_stop_ends_the_runtime_threads() {
        let runtime = IoRuntime::named("rt-stop-ends");
        runtime.block_on(async {}).expect("runs");
        assert_eq!(await_threads_named("rt-stop-ends", 2), 2, "two workers");
        runtime.stop(Duration::from_secs(2));
        assert_eq!(
            await_threads_named("rt-stop-ends", 0),
            0,
            "the workers ended"
        );
    }

    #[test]
    fn racing_first_calls_start_one_runtime_and_all_of_them_run() {
        let runtime = Arc::new(IoRuntime::named("rt-first-race"));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let callers: Vec<_> = (0..16_u32)
            .map(|index| {
                let (runtime, barrier) = (Arc::clone(&runtime), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    runtime.block_on(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        index
                    })
                })
            })
            .collect();
        let answers: Vec<u32> = callers
            .into_iter()
            .map(|caller| caller.join().expect("no panic").expect("runs"))
            .collect();
        assert_eq!(answers, (0..16).collect::<Vec<_>>());
        assert_eq!(
            await_threads_named("rt-first-race", 2),
            2,
            "one runtime's two workers"
        );
        assert!(runtime.stop(Duration::from_secs(2)));
    }

    #[test]
    fn a_call_from_a_runtime_thread_is_refused() {
        let runtime = IoRuntime::named("rt-nested");
        let inner =
            runtime.block_on(async { IoRuntime::named("rt-inner").block_on(async {}).is_err() });
        assert!(inner.expect("outer runs"));
        runtime.stop(Duration::from_secs(1));
    }
}
