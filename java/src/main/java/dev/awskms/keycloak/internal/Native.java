package dev.awskms.keycloak.internal;

import java.util.List;

/**
 * The one door to the native library. Each method makes sure the library is loaded (cheap after the
 * first time) and then makes exactly one {@link NativeBridge} call; the behaviour, JSON shapes and
 * error codes are the JNI contract of docs/design.md, section JNI.
 *
 * <p>Every method may throw {@link NativeLibraryLoadException} when the library cannot be loaded,
 * and {@link NativeException} when the native call fails.
 */
public final class Native {

    private Native() {
    }

    /** Loads the library unless it is loaded already. */
    public static void ensureLoaded() {
        NativeLibraryLoader.ensureLoaded();
    }

    /**
     * Whether the library is loaded, without loading it: lets cleanup paths (evictions, releases)
     * skip a library that never held anything.
     */
    public static boolean isLoaded() {
        return NativeLibraryLoader.isLoaded();
    }

    /** The native crate's version. */
    public static String version() {
        ensureLoaded();
        return NativeBridge.version();
    }

    /** Every error code the native side can throw. */
    public static List<String> errorCodes() {
        ensureLoaded();
        return List.of(NativeBridge.errorCodes());
    }

    /** The signing rules Java must agree with; read by tests only. */
    public static String signingCatalogue() {
        ensureLoaded();
        return NativeBridge.signingCatalogue();
    }

    /**
     * Replaces the server policy for aws-kms providers: the options the operator set, by option
     * name, values as written; an option left out takes its native default.
     *
     * @throws NativeException INVALID_ARGUMENT naming the option as the operator writes it
     */
    public static void configureSigningPolicy(String optionsJson) {
        ensureLoaded();
        NativeBridge.configureSigningPolicy(optionsJson);
    }

    /** Validates a key provider configuration against KMS and describes the key. */
    public static String describeSigningKey(String configJson) {
        ensureLoaded();
        return NativeBridge.describeSigningKey(configJson);
    }

    /**
     * The handle of {@code componentId}'s key for this configuration. Another configuration for the
     * same component replaces the component's previous key, whose handle then fails with
     * {@link NativeErrorCode#INVALID_HANDLE}.
     */
    public static long signingKeyHandle(String componentId, String configJson) {
        ensureLoaded();
        return NativeBridge.signingKeyHandle(componentId, configJson);
    }

    /** Signs a whole message with KMS: raw RSA signature, or DER-encoded ECDSA signature. */
    public static byte[] sign(long handle, String jcaAlgorithm, byte[] message) {
        ensureLoaded();
        return NativeBridge.sign(handle, jcaAlgorithm, message);
    }

    /** Forgets {@code componentId}'s signing key; unknown ids are ignored. */
    public static void releaseSigningKey(String componentId) {
        ensureLoaded();
        NativeBridge.releaseSigningKey(componentId);
    }

    /** {@code {"keys":n,"clients":n}}: registered signing keys and live KMS clients. */
    public static String signingKeyStats() {
        ensureLoaded();
        return NativeBridge.signingKeyStats();
    }

    /** Replaces the public key cache options; a member left out takes its native default. */
    public static void configurePublicKeyCache(String optionsJson) {
        ensureLoaded();
        NativeBridge.publicKeyCacheConfigure(optionsJson);
    }

    /** The public key cache option defaults, in the option names and units. */
    public static String publicKeyCacheDefaults() {
        ensureLoaded();
        return NativeBridge.publicKeyCacheDefaults();
    }

    /**
     * The source's fresh keys, or null. Asks by the source's id once the native cache handed one
     * out ({@link SourceIds}): no string crosses and no lock is taken on a hit.
     */
    public static CachedPublicKeys cachedPublicKeys(String sourceKey) {
        ensureLoaded();
        long id = SourceIds.get(sourceKey);
        if (id != 0) {
            // Null also when the id names no cached source any more; the reload that follows a
            // miss then asks by key and learns the new id.
            return (CachedPublicKeys) NativeBridge.publicKeyCacheGetById(id);
        }
        long[] sourceId = new long[1];
        Object answer = NativeBridge.publicKeyCacheGet(sourceKey, sourceId);
        SourceIds.remember(sourceKey, sourceId[0]);
        return (CachedPublicKeys) answer;
    }

    /**
     * Asks to reload a source's keys. Either the answer is ready (fresh, throttled, coalesced with
     * another caller's load, or stale), or this caller leads the load and must end its permit with
     * {@link #completePublicKeyReload} or {@link #failPublicKeyReload}, from a {@code finally}.
     */
    public static ReloadStart beginPublicKeyReload(String sourceKey) {
        ensureLoaded();
        // [0]: the permit (0: not leading); [1]: the source's id (0: the id named no cached source).
        long[] permitAndId = new long[2];
        long id = SourceIds.get(sourceKey);
        Object answer = id == 0 ? null : NativeBridge.publicKeyCacheReloadById(id, permitAndId);
        if (permitAndId[1] == 0) {
            answer = NativeBridge.publicKeyCacheReload(sourceKey, permitAndId);
        }
        if (permitAndId[1] != id) {
            SourceIds.remember(sourceKey, permitAndId[1]);
        }
        return new ReloadStart((CachedPublicKeys) answer, permitAndId[0]);
    }

    /** Stores the leader's keys (unless its permit expired or the source was evicted meanwhile) and returns them. */
    public static CachedPublicKeys completePublicKeyReload(long permit, CachedPublicKeys keys) {
        ensureLoaded();
        // null keys: the native side refuses them with INVALID_ARGUMENT and fails the permit.
        long expiresAtEpochMillis = keys == null ? 0L : keys.expiresAtEpochMillis();
        return (CachedPublicKeys) NativeBridge.publicKeyCacheCompleteReload(permit, keys, expiresAtEpochMillis);
    }

    /**
     * Records the leader's failed load.
     *
     * @param reason {@code ClassName: message}, at most 500 characters, no secrets
     * @return the last usable keys (stale-on-error)
     * @throws NativeException PUBLIC_KEYS_UNAVAILABLE, carrying {@code reason}, when none are usable
     *                         or the permit expired
     */
    public static CachedPublicKeys failPublicKeyReload(long permit, String reason) {
        ensureLoaded();
        return (CachedPublicKeys) NativeBridge.publicKeyCacheFailReload(permit, reason);
    }

    /** Drops the source's entry. */
    public static void evictPublicKeys(String sourceKey) {
        ensureLoaded();
        NativeBridge.publicKeyCacheEvict(sourceKey);
        SourceIds.forget(sourceKey);
    }

    /** Drops every entry whose source key starts with the prefix, e.g. {@code "<realmId>::"}. */
    public static void evictPublicKeysByPrefix(String sourceKeyPrefix) {
        ensureLoaded();
        NativeBridge.publicKeyCacheEvictPrefix(sourceKeyPrefix);
        SourceIds.forgetPrefix(sourceKeyPrefix);
    }

    /** Drops every entry ("Clear keys cache"). */
    public static void clearPublicKeys() {
        ensureLoaded();
        NativeBridge.publicKeyCacheClear();
        SourceIds.clear();
    }

    /** The public key cache counters, as JSON. */
    public static String publicKeyCacheStats() {
        ensureLoaded();
        return NativeBridge.publicKeyCacheStats();
    }

    /** Downloads a JWKS and returns its keys for {@code requestedUse} ({@code "sig"} or {@code "enc"}). */
    public static String fetchJwks(String url, String requestedUse) {
        ensureLoaded();
        return NativeBridge.fetchJwks(url, requestedUse);
    }

    /** The categories of the native side's log records, e.g. {@code dev.awskms.keycloak.native.signing}. */
    public static List<String> logCategories() {
        ensureLoaded();
        return List.of(NativeBridge.logCategories());
    }

    /**
     * Sets the level each native log category's records are made at.
     *
     * @param levelsJson {@code {"<category>":"OFF|ERROR|WARN|INFO|DEBUG|TRACE"...}}; categories left out keep theirs
     * @throws NativeException INVALID_ARGUMENT for an unknown category or level
     */
    public static void configureLogLevels(String levelsJson) {
        ensureLoaded();
        NativeBridge.configureLogLevels(levelsJson);
    }

    /**
     * Takes the queued native log records, waiting up to {@code waitMillis} (at most 10 s) for the
     * first; blocks only the calling thread.
     *
     * @return {@code {"dropped":n,"records":[{"category","level","message"}...]}}
     */
    public static String drainLogRecords(long waitMillis) {
        ensureLoaded();
        return NativeBridge.drainLogRecords(waitMillis);
    }

    /** Ends a waiting {@link #drainLogRecords} at once. */
    public static void wakeLogDrain() {
        ensureLoaded();
        NativeBridge.wakeLogDrain();
    }

    /**
     * The counters behind Keycloak's metrics: {@code {"kms":{"calls":[{"operation","outcome","count"}...],
     * "retries":[{"code","count"}...],"throttles":n},"logs":{"dropped":n},"signingKeys":{"keys","clients"}}}.
     */
    public static String telemetryStats() {
        ensureLoaded();
        return NativeBridge.telemetryStats();
    }

    /**
     * The last signing success and failure of each key provider on this node:
     * {@code [{"componentId","realm","kid","keyArn","lastSuccess","lastFailure":{"at","code","message"},
     * "failuresSinceSuccess"}...]}, times in epoch milliseconds.
     */
    public static String signingOutcomes() {
        ensureLoaded();
        return NativeBridge.signingOutcomes();
    }

    /**
     * Whether this "PublicKey wasn't found" line of {@code sourceKey} is logged at WARN (at most once
     * per window per source): the note to append, or null to log it at DEBUG.
     */
    public static String unknownKidNote(String sourceKey) {
        ensureLoaded();
        return NativeBridge.unknownKidNote(sourceKey);
    }
}
