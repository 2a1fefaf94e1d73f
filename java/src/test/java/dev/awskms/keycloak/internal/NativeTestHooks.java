package dev.awskms.keycloak.internal;

/**
 * Natives that exist only to test the error and panic policy. {@code JNI_OnLoad} binds them only in
 * the library built with cargo feature {@code test-hooks}, which the unit tests load (pom.xml,
 * {@code test.native.library.path}); the library in the JAR has no such entry points. Load the
 * library with {@link Native#ensureLoaded()} before calling them.
 */
final class NativeTestHooks {

    private NativeTestHooks() {
    }

    /** Panics in Rust, to prove the panic becomes a {@link NativeException} with code PANIC. */
    static native void panicForTesting();

    /** Throws a {@link NativeException} with the given wire code. */
    static native void failForTesting(String code);
}
