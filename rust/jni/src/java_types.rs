//! Every Java class, constructor and method the native side names, bound once. Nowhere else in
//! this crate may look up a class or call Java: clippy's `disallowed-methods` (see `clippy.toml`)
//! bans the raw lookups, and this module alone is allowed them.
//!
//! The native side calls no Java code except the constructor of `NativeException` (to throw
//! it). It holds `CachedPublicKeys` objects only as global references (see [`crate::public_keys`]);
//! their type is checked by the JVM, through the natives' declared parameter types. It keeps no
//! global reference to a class: each would pin the class loader and keep the library loaded.

// The one module allowed the raw lookups (the bindings below expand to them).
#![allow(clippy::disallowed_methods)]

use jni::objects::{JString, JThrowable, JValue};
use jni::strings::JNIStr;
use jni::{jni_sig, jni_str, Env, NativeMethod};

/// The class whose natives [`crate::exports::NATIVE_METHODS`] implements.
pub const NATIVE_BRIDGE: &JNIStr = jni_str!("dev/awskms/keycloak/internal/NativeBridge");

/// The test class whose natives the `test-hooks` build adds.
#[cfg(feature = "test-hooks")]
pub const NATIVE_TEST_HOOKS: &JNIStr = jni_str!("dev/awskms/keycloak/internal/NativeTestHooks");

/// The exception every native throws (`docs/design.md`, "JNI").
const NATIVE_EXCEPTION: &JNIStr = jni_str!("dev/awskms/keycloak/internal/NativeException");

/// A new `NativeException(code, retryable, message)`.
///
/// The class and constructor are looked up on every call, not bound once and cached
/// (`bind_java_type!` would keep the class as a global reference for the life of the process):
/// a global reference to a class pins its class loader, and a pinned class loader is never
/// collected, so the JVM would never unload the library with it (`JNI_OnUnload`, a redeploy).
/// Exceptions are the error path; the lookup costs about a microsecond.
pub fn new_native_exception<'local>(
    env: &mut Env<'local>,
    code: &JString<'_>,
    retryable: bool,
    message: &JString<'_>,
) -> jni::errors::Result<JThrowable<'local>> {
    let exception = env.new_object(
        NATIVE_EXCEPTION,
        jni_sig!("(Ljava/lang/String;ZLjava/lang/String;)V"),
        &[
            JValue::Object(code.as_ref()),
            JValue::Bool(retryable),
            JValue::Object(message.as_ref()),
        ],
    )?;
    env.cast_local::<JThrowable>(exception)
}

/// Registers `methods` as the natives of `class` (binary name with slashes).
///
/// # Safety
///
/// Every entry of `methods` must be built by `jni::native_method!` (which checks each Rust
/// function against its JNI signature at compile time) and name a static method of `class`.
pub unsafe fn register_natives(
    env: &mut Env<'_>,
    class: &JNIStr,
    methods: &[NativeMethod<'static>],
) -> jni::errors::Result<()> {
    let class = env.find_class(class)?;
    // SAFETY: the caller guarantees that `methods` match static methods of `class`.
    unsafe { env.register_native_methods(&class, methods) }
}
