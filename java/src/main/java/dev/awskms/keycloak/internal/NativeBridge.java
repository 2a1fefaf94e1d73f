package dev.awskms.keycloak.internal;

/**
 * Every native method of {@code libkeycloak_aws_kms.so}, and nothing else. The names, descriptors,
 * JSON shapes and error codes are the JNI contract in docs/design.md, section JNI; this class only
 * names each method in one line.
 *
 * <p>The library binds these methods in {@code JNI_OnLoad} with {@code RegisterNatives}, so a
 * mismatch fails when the library loads, not at the first token. The class has no static
 * initialiser (Keycloak instantiates factories while it builds the server, where no native code may
 * load), and nothing outside this package calls it: {@link Native} loads the library and then makes
 * the call. A call without the library fails with {@link UnsatisfiedLinkError}, never silently.
 *
 * <p>Every method reports failure by throwing {@link NativeException}; a Rust panic arrives as code
 * {@link NativeErrorCode#PANIC}.
 */
final class NativeBridge {

    private NativeBridge() {
    }

    /** The native crate's version. */
    static native String version();

    /** Every error code the native side can throw. */
    static native String[] errorCodes();

    /** The signing rules Java must agree with (algorithms, credentials modes, defaults), as JSON. */
    static native String signingCatalogue();

    /** Replaces the server policy for aws-kms providers with the operator's options, as JSON. */
    static native void configureSigningPolicy(String optionsJson);

    /** Validates a key provider configuration against KMS and describes the key, as JSON. */
    static native String describeSigningKey(String configJson);

    /** The handle of a component's signing key for this configuration; registers it if new. No network. */
    static native long signingKeyHandle(String componentId, String configJson);

    /** Signs a whole message with KMS and verifies the signature against the stored public key. */
    static native byte[] sign(long handle, String jcaAlgorithm, byte[] message);

    /** Forgets a component's signing key (and a KMS client nobody else uses); unknown ids are ignored. */
    static native void releaseSigningKey(String componentId);

    /** Registered signing keys and live KMS clients, as JSON. */
    static native String signingKeyStats();

    /** Replaces the public key cache options (option names and units, all optional) and trust. */
    static native void publicKeyCacheConfigure(String optionsJson);

    /** The public key cache option defaults, as JSON in the option names and units. */
    static native String publicKeyCacheDefaults();

    /** The source's fresh {@link CachedPublicKeys}, or null; writes the source's id (0: not cached) to {@code sourceId[0]}. */
    static native Object publicKeyCacheGet(String sourceKey, long[] sourceId);

    /** The hit path: the fresh {@link CachedPublicKeys} of the source the id names, or null (also for an unknown id). */
    static native Object publicKeyCacheGetById(long sourceId);

    /**
     * Starts a reload: writes a permit id to {@code permit[0]} and returns null when the caller leads
     * the load, otherwise writes 0 and returns the keys to use now (or null); writes the source's id
     * to {@code permit[1]} when the array has room.
     */
    static native Object publicKeyCacheReload(String sourceKey, long[] permit);

    /** {@link #publicKeyCacheReload} for the source the id names; 0 in {@code permit[1]} when no cached source has it. */
    static native Object publicKeyCacheReloadById(long sourceId, long[] permit);

    /** Stores the leader's keys (unless the permit expired) and returns them. */
    static native Object publicKeyCacheCompleteReload(long permit, CachedPublicKeys keys, long expiresAtEpochMillis);

    /** Records the leader's failed load; returns the last usable keys or throws PUBLIC_KEYS_UNAVAILABLE. */
    static native Object publicKeyCacheFailReload(long permit, String reason);

    /** Drops the source's entry. */
    static native void publicKeyCacheEvict(String sourceKey);

    /** Drops every entry whose source key starts with the prefix. */
    static native void publicKeyCacheEvictPrefix(String sourceKeyPrefix);

    /** Drops every entry. */
    static native void publicKeyCacheClear();

    /** The public key cache counters, as JSON. */
    static native String publicKeyCacheStats();

    /** Downloads a JWKS and returns its keys for the requested use, as JSON. */
    static native String fetchJwks(String url, String requestedUse);

    /** The categories of the native side's log records. */
    static native String[] logCategories();

    /** Sets the level each native log category's records are made at, as JSON. */
    static native void configureLogLevels(String levelsJson);

    /** The queued native log records, as JSON; waits up to {@code waitMillis} (at most 10 s) for the first. */
    static native String drainLogRecords(long waitMillis);

    /** Ends a waiting {@link #drainLogRecords} at once. */
    static native void wakeLogDrain();

    /** The counters behind Keycloak's metrics (KMS requests, retries, throttling, dropped records), as JSON. */
    static native String telemetryStats();

    /** The last signing success and failure of each key provider on this node, as JSON. */
    static native String signingOutcomes();

    /** The note to log a source's unknown kid at WARN with, or null for DEBUG. */
    static native String unknownKidNote(String sourceKey);
}
