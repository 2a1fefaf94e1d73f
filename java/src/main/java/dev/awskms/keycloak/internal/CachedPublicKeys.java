package dev.awskms.keycloak.internal;

import java.util.Objects;

import org.keycloak.crypto.PublicKeysWrapper;

/**
 * One source's public keys as the native cache keeps them: built once by the caller that led the
 * load, then handed back as this very object on every hit, so a hit parses nothing and builds no
 * {@code KeyWrapper}.
 *
 * <p>Immutable as far as this class goes; the wrapped keys are shared by every caller, so callers
 * must {@code cloneKey()} a key before giving it out. The native side holds it as a global
 * reference and never calls its methods (the expiry travels as an argument of
 * {@link Native#completePublicKeyReload}).
 */
public final class CachedPublicKeys {

    private final PublicKeysWrapper keys;
    private final long expiresAtEpochMillis;

    /**
     * @param keys                 the source's keys, never null (an empty wrapper for a source
     *                             without keys)
     * @param expiresAtEpochMillis when the source said these keys stop being valid (e.g. a SAML
     *                             metadata validUntil), in epoch milliseconds; 0 for no such limit
     *                             (the cache's max age still applies)
     */
    public CachedPublicKeys(PublicKeysWrapper keys, long expiresAtEpochMillis) {
        this.keys = Objects.requireNonNull(keys, "keys");
        this.expiresAtEpochMillis = expiresAtEpochMillis;
    }

    /** The keys; shared, so clone a key before handing it to a caller that may mutate it. */
    public PublicKeysWrapper keys() {
        return keys;
    }

    /** Epoch milliseconds after which these keys must not be served as fresh; 0 = no limit. */
    public long expiresAtEpochMillis() {
        return expiresAtEpochMillis;
    }
}
