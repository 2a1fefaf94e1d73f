//! Every Java class, constructor and method the native side names, bound once. Nowhere else in
//! this crate may look up a class or call Java: clippy's `disallowed-methods` (see `clippy.toml`)
//! bans the raw lookups, and this module alone is allowed them.
//!
//! The native side calls no Java code except the constructor of `NativeException` (to throw
//! it). It holds `CachedPublicKeys` objects only as global references (see [`crate::public_keys`]);
//! their type is checked by the JVM, through the natives' declared parameter types.

// The one module allowed the raw lookups (the bindings below expand to them).
#![allow(clippy::disallowed_methods)]

use jni::bind_java_type;
use jni::strings::JNIStr;
use jni::{jni_str, Env, NativeMethod};

/// The class whose natives [`crate::exports::NATIVE_METHODS`] implements.
pub const NATIVE_BRIDGE: &JNIStr = jni_str!("dev/awskms/keycloak/internal/NativeBridge");

/// The test class whose natives the `test-hooks` build adds.
#[cfg(feature = "test-hooks")]
pub const NATIVE_TEST_HOOKS: &JNIStr = jni_str!("dev/awskms/keycloak/internal/NativeTestHooks");

bind_java_type! {
    pub NativeException => dev.awskms.keycloak.internal.NativeException,
    constructors {
        fn new(code: JString, retryable: bool, message: JString),
    },
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
