package dev.awskms.keycloak;

/**
 * Loads one source's keys when the native cache decides a reload may run. The native side calls
 * {@link #load()} (descriptor {@code ()Ldev/awskms/keycloak/CachedPublicKeys;}) on the thread that
 * called {@link NativeBridge#publicKeyCacheReload(String, NativeKeyLoader)}, at most once per call,
 * and only when that thread leads a permitted reload; keep the name and signature.
 */
@FunctionalInterface
public interface NativeKeyLoader {

    /**
     * @return the freshly loaded keys, never null
     * @throws Exception when the keys cannot be loaded; the native cache records the failure (its
     *                   class and message, which must not carry secrets) and keeps serving the last
     *                   good keys within the stale-on-error limit
     */
    CachedPublicKeys load() throws Exception;
}
