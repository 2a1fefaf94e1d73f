//! The global references the library holds, counted: every one is a [`HeldRef`], created when
//! Rust keeps a Java object and deleted when the last holder drops it. [`count`] is the number
//! alive, which `telemetryStats` reports (`jni.globalReferences`) so that a soak can see it stay
//! flat.

use std::sync::atomic::{AtomicU64, Ordering};

use jni::objects::{Global, JObject};

static HELD: AtomicU64 = AtomicU64::new(0);

/// A global reference the library holds; deleted (and uncounted) when dropped.
#[derive(Debug)]
pub struct HeldRef {
    global: Global<JObject<'static>>,
}

impl HeldRef {
    /// Takes over `global` and counts it.
    pub fn new(global: Global<JObject<'static>>) -> HeldRef {
        HELD.fetch_add(1, Ordering::Relaxed);
        HeldRef { global }
    }

    /// The reference, to make local references from.
    pub fn global(&self) -> &Global<JObject<'static>> {
        &self.global
    }
}

impl Drop for HeldRef {
    fn drop(&mut self) {
        // The reference itself is deleted by `Global`'s own drop, right after.
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many global references the library holds now.
pub fn count() -> u64 {
    HELD.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_reference_is_counted_until_it_is_dropped() {
        // A null global needs no JVM; the count is what is tested. Other tests of this crate
        // hold no references (they have no JVM), so the count starts at zero.
        let before = count();
        let first = HeldRef::new(Global::null());
        let second = HeldRef::new(Global::null());
        assert_eq!(count(), before + 2);
        drop(first);
        assert_eq!(count(), before + 1);
        drop(second);
        assert_eq!(count(), before);
        assert!(HeldRef::new(Global::null()).global().is_null());
        assert_eq!(count(), before);
    }
}
