//! The JNI bridge of the Keycloak AWS KMS extension, built as `libkeycloak_aws_kms.so`.
//!
//! - [`exports`]: every native method of `dev.awskms.keycloak.NativeBridge`.
//! - [`policy`]: the one error/panic policy they all run through.
//! - [`public_key_cache`]: the public key cache holding ready Java objects, and JWKS downloads.
//!
//! This is the only crate of the project with `unsafe` code: registering the natives.
#![allow(unsafe_code)]

pub mod exports;
pub mod policy;
pub mod public_key_cache;

use std::ffi::c_void;

use jni::sys::{jint, JNI_ERR, JNI_VERSION_1_8};
use jni::{jni_str, JavaVM};

/// Registers every native method of `NativeBridge` when the JVM loads the library. A mismatch
/// between the Java declarations and [`exports::NATIVE_METHODS`] leaves an
/// `UnsatisfiedLinkError` pending, which `System.load` throws.
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
        // SAFETY: the JVM calls JNI_OnLoad with a valid, non-null JavaVM pointer that outlives
        // the library.
        let vm = unsafe { JavaVM::from_raw(vm) };
        vm.attach_current_thread(|env| -> jni::errors::Result<()> {
            let outcome = (|| {
                let class = env.find_class(jni_str!("dev/awskms/keycloak/NativeBridge"))?;
                // SAFETY: every entry of NATIVE_METHODS is built by `native_method!`, which
                // checks each Rust function against its JNI signature at compile time; all are
                // declared `static` there and are static methods of NativeBridge.
                unsafe { env.register_native_methods(&class, &exports::NATIVE_METHODS) }
            })();
            if let Err(error) = outcome {
                if env.exception_check() {
                    env.exception_clear();
                }
                let message = format!(
                    "libkeycloak_aws_kms could not register its native methods on \
                     dev.awskms.keycloak.NativeBridge: {error}"
                );
                let _ = env.throw_new(
                    jni_str!("java/lang/UnsatisfiedLinkError"),
                    jni::strings::JNIString::new(message),
                );
            }
            Ok(())
        })
    });
    match registered {
        Ok(Ok(())) => JNI_VERSION_1_8,
        _ => JNI_ERR,
    }
}
