package dev.awskms.keycloak;

/**
 * Every native method of {@code libkeycloak_aws_kms.so}, and nothing else.
 *
 * <p>The library binds these methods in {@code JNI_OnLoad} with {@code RegisterNatives} on this
 * class, so their names and descriptors are the contract of docs/design.md ("JNI") and a mismatch
 * fails when the library loads, not at the first token.
 *
 * <p>This class deliberately has no static initialiser: Keycloak instantiates provider factories
 * while building the server, where no native code may load; and {@code JNI_OnLoad} looks this class
 * up while the library loads. Callers first call {@link NativeLibraryLoader#ensureLoaded()} (it is
 * cheap after the first time); a call without it fails with {@link UnsatisfiedLinkError}, never
 * silently.
 *
 * <p>Every method reports failure by throwing {@link NativeException}; a Rust panic arrives as
 * code {@link NativeErrorCode#PANIC}.
 */
final class NativeBridge {

    private NativeBridge() {
    }

    /** The native crate's version. */
    static native String version();

    /** Every error code the native side can throw, for the exhaustive mapping test. */
    static native String[] errorCodes();

    /**
     * Validates a key provider configuration against KMS (DescribeKey, GetPublicKey, checks).
     *
     * @param configJson flat JSON object of the component config, see {@link NativeConfigJson}
     * @return JSON {@code {"keyArn","keySpec","publicKey","kid","signingAlgorithms":[...]}}
     */
    static native String describeSigningKey(String configJson);

    /**
     * Registers (or finds) the signing key for a stored configuration; no network. The same
     * configuration gives the same handle. The handle is an opaque registry id, never a pointer.
     *
     * @param configJson must contain {@code keyArn}, {@code keySpec} and {@code publicKey}
     */
    static native long signingKeyHandle(String configJson);

    /**
     * Signs a whole message: hashes it locally, KMS {@code Sign} with {@code MessageType=DIGEST},
     * verifies the result against the stored public key.
     *
     * @param jcaAlgorithm e.g. {@code SHA256withRSA}, {@code SHA256withRSAandMGF1}, {@code SHA256withECDSA}
     * @return the raw RSA signature or the DER-encoded ECDSA signature
     */
    static native byte[] sign(long handle, String jcaAlgorithm, byte[] message);

    /** Panics in Rust, to prove the panic becomes a {@link NativeException} with code PANIC. */
    static native void panicForTesting();

    /** Throws a {@link NativeException} with the given wire code. */
    static native void failForTesting(String code);
}
