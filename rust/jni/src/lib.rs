//! The JNI bridge of the Keycloak AWS KMS extension, built as `libkeycloak_aws_kms.so`. The
//! contract it implements is described once, in `docs/design.md` ("JNI").
//!
//! - [`exports`]: every native method of `dev.awskms.keycloak.internal.NativeBridge`.
//! - [`policy`]: the one error/panic policy they all run through.
//! - [`public_keys`]: the public key cache holding ready Java objects, and JWKS downloads.
//! - [`telemetry`]: log records, counters and signing outcomes that Java pulls.
//! - [`java_types`]: the Java classes and the one constructor the native side names, bound once.
//!
//! This is the only crate of the project with `unsafe` code: registering the natives.
#![allow(unsafe_code)]

mod exports;
mod java_types;
mod policy;
mod public_keys;
mod telemetry;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use std::ffi::c_void;

use jni::strings::JNIStr;
use jni::sys::{jint, JNI_ERR, JNI_VERSION_1_8};
use jni::{jni_str, Env, JavaVM, NativeMethod};

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
        vm.attach_current_thread(|env| -> jni::errors::Result<()> {
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
