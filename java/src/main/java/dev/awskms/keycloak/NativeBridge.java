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

    // Public key storage (docs/design.md, "Public key storage"). Source keys are Keycloak's
    // modelKeys: "<realmId>::client::<clientUuid>::keyuse::SIG|ENCRYPTION", "<realmId>::idp::<idpId>".

    /**
     * Replaces the cache policy and the JWKS HTTP client settings. Cached entries survive; the new
     * limits apply from the next call. Until the first call the documented defaults apply.
     *
     * @param policyJson {@code {"minTimeBetweenRequestsMillis":10000,"maxEntries":1000,
     *                   "maxIdleMillis":3600000,"maxAgeMillis":86400000,"staleOnErrorMillis":3600000,
     *                   "fetchConnectTimeoutMillis":2000,"fetchTimeoutMillis":5000,
     *                   "maxResponseBytes":1048576,"trustedCertificates":["base64 DER",...]}};
     *                   a missing member keeps its default; {@code trustedCertificates} are the
     *                   certificates JWKS downloads over HTTPS trust (none: HTTPS downloads fail)
     * @throws NativeException INVALID_ARGUMENT for malformed JSON, a non-positive limit or a
     *                         certificate that does not parse
     */
    static native void publicKeyCacheConfigure(String policyJson);

    /**
     * The source's keys if a fresh entry exists (not past its own expiry, not older than the max
     * age, not idle too long), else null. Marks the entry as used.
     *
     * @return a {@link CachedPublicKeys} (the very object a loader returned earlier) or null
     */
    static native Object publicKeyCacheGet(String sourceKey);

    /**
     * Reloads the source's keys under the cache policy: at most one attempt per source per
     * min-time-between-requests window (attempts count, not successes), one load at a time per
     * source (concurrent callers wait, at most the fetch timeout, for the leader's result), and
     * stale-on-error. Calls {@code loader.load()} on this thread only when this caller leads a
     * permitted reload.
     *
     * @return the keys to use now (fresh; or the current ones when throttled; or the last good ones
     *         when the load failed within the stale-on-error limit), or null when throttled with
     *         nothing cached
     * @throws NativeException PUBLIC_KEYS_UNAVAILABLE when the load failed (or the leader's wait
     *                         timed out) and nothing usable is cached; the message carries the
     *                         loader's exception class and message
     */
    static native Object publicKeyCacheReload(String sourceKey, NativeKeyLoader loader);

    /** Drops the source's entry (keys, window and failure state). */
    static native void publicKeyCacheEvict(String sourceKey);

    /** Drops every entry whose source key starts with the prefix, e.g. {@code "<realmId>::"}. */
    static native void publicKeyCacheEvictPrefix(String sourceKeyPrefix);

    /** Drops every entry ("Clear keys cache"). */
    static native void publicKeyCacheClear();

    /**
     * Counters since the library loaded, as JSON {@code {"entries":n,"hits":n,"misses":n,"loads":n,
     * "loadFailures":n,"throttled":n,"coalesced":n,"staleServed":n}}.
     */
    static native String publicKeyCacheStats();

    /**
     * Downloads a JWKS with the configured timeouts, size cap and trust; redirects are refused. Keys
     * are filtered as Keycloak's {@code JWKSUtils.getKeyWrappersForUse(jwks, use, true)}: a key
     * without {@code use} counts as the requested use.
     *
     * @param requestedUse {@code "sig"} or {@code "enc"}
     * @return JSON {@code {"keys":[{"kid","kty":"RSA|EC|OKP","alg","use","crv","spki":"base64 DER",
     *         "x5c":["base64 DER",...]}],"skipped":[{"kid","reason"}]}} ({@code kid}, {@code alg},
     *         {@code crv} may be null)
     * @throws NativeException JWKS_FETCH_FAILED (non-2xx, redirect, too large, TLS), TIMEOUT,
     *                         NETWORK, JWKS_INVALID (not a JWKS document), INVALID_ARGUMENT
     */
    static native String fetchJwks(String url, String requestedUse);
}
