package dev.awskms.keycloak;

/**
 * The native public key cache and JWKS download for the Keycloak glue in
 * {@code dev.awskms.keycloak.publickeys}, which cannot see the package-private {@link NativeBridge}.
 * Each method loads the library first (cheap after the first time) and then makes exactly one
 * native call; the behaviour and the exceptions are {@link NativeBridge}'s.
 */
public final class NativePublicKeyCache {

    private NativePublicKeyCache() {
    }

    /** See {@link NativeBridge#publicKeyCacheConfigure(String)}. */
    public static void configure(String policyJson) {
        NativeLibraryLoader.ensureLoaded();
        NativeBridge.publicKeyCacheConfigure(policyJson);
    }

    /** See {@link NativeBridge#publicKeyCacheGet(String)}. */
    public static CachedPublicKeys get(String sourceKey) {
        NativeLibraryLoader.ensureLoaded();
        return (CachedPublicKeys) NativeBridge.publicKeyCacheGet(sourceKey);
    }

    /** See {@link NativeBridge#publicKeyCacheReload(String, NativeKeyLoader)}. */
    public static CachedPublicKeys reload(String sourceKey, NativeKeyLoader loader) {
        NativeLibraryLoader.ensureLoaded();
        return (CachedPublicKeys) NativeBridge.publicKeyCacheReload(sourceKey, loader);
    }

    /** See {@link NativeBridge#publicKeyCacheEvict(String)}. */
    public static void evict(String sourceKey) {
        NativeLibraryLoader.ensureLoaded();
        NativeBridge.publicKeyCacheEvict(sourceKey);
    }

    /** See {@link NativeBridge#publicKeyCacheEvictPrefix(String)}. */
    public static void evictPrefix(String sourceKeyPrefix) {
        NativeLibraryLoader.ensureLoaded();
        NativeBridge.publicKeyCacheEvictPrefix(sourceKeyPrefix);
    }

    /** See {@link NativeBridge#publicKeyCacheClear()}. */
    public static void clear() {
        NativeLibraryLoader.ensureLoaded();
        NativeBridge.publicKeyCacheClear();
    }

    /** See {@link NativeBridge#publicKeyCacheStats()}. */
    public static String stats() {
        NativeLibraryLoader.ensureLoaded();
        return NativeBridge.publicKeyCacheStats();
    }

    /** See {@link NativeBridge#fetchJwks(String, String)}. */
    public static String fetchJwks(String url, String requestedUse) {
        NativeLibraryLoader.ensureLoaded();
        return NativeBridge.fetchJwks(url, requestedUse);
    }
}
