//! The JNI bridge of the Keycloak AWS KMS extension, built as `libkeycloak_aws_kms.so`. The
//! contract it implements is described once, in `docs/design.md` ("JNI").
//!
//! - [`exports`]: every native method of `dev.awskms.keycloak.internal.NativeBridge`.
//! - [`policy`]: the one error/panic policy they all run through.
//! - [`public_keys`]: the public key cache holding ready Java objects, and JWKS downloads.
//! - [`telemetry`]: log records, counters and signing outcomes that Java pulls.
//! - [`java_types`]: the Java classes and the one constructor the native side names, bound once.
//! - [`held_refs`]: the global references the library holds, counted.
//!
//! Lifecycle (`docs/design.md`, "Library lifecycle"): `JNI_OnLoad` registers the natives once
//! per class loader that loads the library; `JNI_OnUnload`, when the JVM unloads it with that
//! class loader, drops the cached objects, wakes the log thread and stops the I/O runtime within
//! a bound.
//!
//! This is the only crate of the project with `unsafe` code: registering the natives, the
//! library's load and unload hooks, and the two hot cache natives that call the JNI function
//! table directly (`public_keys::raw`).
#![allow(unsafe_code)]

mod exports;
mod held_refs;
mod java_types;
mod policy;
mod public_keys;
mod telemetry;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use std::ffi::c_void;
use std::time::Duration;

use jni::strings::JNIStr;
use jni::sys::{jint, JNI_ERR, JNI_VERSION_1_8};
use jni::{jni_str, AttachConfig, AttachmentExceptionPolicy, Env, JavaVM, NativeMethod};

/// How long `JNI_OnUnload` waits for the I/O runtime's threads; a thread stuck in a blocking
/// call is left behind rather than waited for.
const UNLOAD_GRACE: Duration = Duration::from_secs(2);

/// Registers every native method of `NativeBridge` (and, in the `test-hooks` build, of
/// `NativeTestHooks`) when the JVM loads the library. A mismatch between the Java declarations
/// and the tables leaves an `UnsatisfiedLinkError` pending, which `System.load` throws.
///
/// # Safety
///
/// Only the JVM calls this, once per class loader that loads the library, with its own valid
/// `JavaVM` pointer.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn JNI_OnLoad(
    vm: *mut jni::sys::JavaVM,
    _reserved: *mut c_void,
) -> jint {
    if vm.is_null() {
        return JNI_ERR;
    }
    let registered = std::panic::catch_unwind(|| {
        keycloak_aws_kms_core::telemetry::logs::install();
        // SAFETY: the JVM calls JNI_OnLoad with a valid, non-null JavaVM pointer that outlives
        // the library.
        let vm = unsafe { JavaVM::from_raw(vm) };
        // The thread is the Java thread in `System.load`. `Ignore`: an `UnsatisfiedLinkError`
        // left pending by `register_or_throw` must reach `System.load` as thrown, not be caught,
        // described through more JNI calls and replaced by the JVM's "unsupported JNI version".
        let config = || AttachConfig::new().exceptions_policy(AttachmentExceptionPolicy::Ignore);
        vm.attach_current_thread_with_config(config, None, |env| -> jni::errors::Result<()> {
            register_or_throw(env, java_types::NATIVE_BRIDGE, &exports::NATIVE_METHODS);
            #[cfg(feature = "test-hooks")]
            register_or_throw(
                env,
                java_types::NATIVE_TEST_HOOKS,
                &test_hooks::NATIVE_METHODS,
            );
            Ok(())
        })
    });
    match registered {
        Ok(Ok(())) => JNI_VERSION_1_8,
        _ => JNI_ERR,
    }
}

/// Releases what the library holds when the JVM unloads it (its class loader was collected):
/// the cached `CachedPublicKeys` global references, a waiting log drain, and the I/O runtime,
/// stopped within [`UNLOAD_GRACE`]. Nothing here calls Java.
///
/// # Safety
///
/// Only the JVM calls this, once, after the last use of the library's natives.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn JNI_OnUnload(_vm: *mut jni::sys::JavaVM, _reserved: *mut c_void) {
    // A panic must not unwind into the JVM; there is nobody left to tell.
    let _ = std::panic::catch_unwind(unload);
}

/// The work of `JNI_OnUnload`.
fn unload() {
    public_keys::clear();
    telemetry::wake();
    keycloak_aws_kms_core::runtime::stop(UNLOAD_GRACE);
}

/// Registers one table, or leaves an `UnsatisfiedLinkError` naming the class pending.
fn register_or_throw(env: &mut Env<'_>, class: &JNIStr, methods: &[NativeMethod<'static>]) {
    if env.exception_check() {
        // An earlier table already failed; its error is the one to report.
        return;
    }
    // SAFETY: every table is built by `native_method!`, which checks each Rust function against
    // its JNI signature at compile time; all are declared `static` there and are static
    // methods of the class they are registered on.
    let outcome = unsafe { java_types::register_natives(env, class, methods) };
    if let Err(error) = outcome {
        if env.exception_check() {
            env.exception_clear();
        }
        let message = format!(
            "libkeycloak_aws_kms could not register its native methods on {}: {error}",
            class.to_string().replace('/', ".")
        );
        let _ = env.throw_new(
            jni_str!("java/lang/UnsatisfiedLinkError"),
            jni::strings::JNIString::new(message),
        );
    }
}
