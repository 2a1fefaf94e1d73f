package dev.awskms.keycloak.internal;

import java.util.List;
import java.util.Objects;

import org.keycloak.crypto.KeyWrapper;
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
     * The keys as an array for {@link #keyByKidAndAlg}, or null when the list holds a null (a
     * broken loader's), which only Keycloak's own search then sees, to fail as it does.
     */
    private final KeyWrapper[] searchable;

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
        this.searchable = withoutNulls(keys.getKeys());
    }

    /** The list as an array, or null when it holds a null (not {@code contains(null)}: List.of throws). */
    private static KeyWrapper[] withoutNulls(List<KeyWrapper> list) {
        KeyWrapper[] array = list.toArray(new KeyWrapper[0]);
        for (KeyWrapper key : array) {
            if (key == null) {
                return null;
            }
        }
        return array;
    }

    /**
     * The key {@link PublicKeysWrapper#getKeyByKidAndAlg} would choose, the very same object,
     * without its streams: a hit's selection is most of what a hit costs (BENCHMARKS.md). With a
     * kid: the first key of that kid whose algorithm equals {@code algorithm} (null matching an
     * unset one), else the first key of that kid; no kid is Keycloak's own search. A test pins the
     * two together on every Keycloak version the build tests (CachedPublicKeysTest).
     */
    public KeyWrapper keyByKidAndAlg(String kid, String algorithm) {
        if (kid == null || searchable == null) {
            return keys.getKeyByKidAndAlg(kid, algorithm);
        }
        KeyWrapper firstOfKid = null;
        for (KeyWrapper key : searchable) {
            if (kid.equals(key.getKid())) {
                if (Objects.equals(algorithm, key.getAlgorithm())) {
                    return key;
                }
                if (firstOfKid == null) {
                    firstOfKid = key;
                }
            }
        }
        return firstOfKid;
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
