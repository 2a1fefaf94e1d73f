package dev.awskms.keycloak.publickeys;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Predicate;

import dev.awskms.keycloak.internal.CachedPublicKeys;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import dev.awskms.keycloak.internal.ReloadStart;
import dev.awskms.keycloak.operator.UnknownKidLog;
import org.jboss.logging.Logger;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.keys.PublicKeyLoader;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakTransaction;

/**
 * Keycloak's public key storage over the native cache, one instance per session.
 *
 * <p>A lookup first asks the cache for the source's fresh keys and searches them with Keycloak's
 * own {@link PublicKeysWrapper} rules; only a miss (no fresh entry, or no matching key) asks for a
 * reload, which the native cache may throttle, coalesce with a running one, or answer with the
 * last good keys. When it lets this caller lead the load instead, the keys are loaded here, in
 * plain Java, and handed back to the cache with the permit. A hit hands back the very
 * {@link CachedPublicKeys} the leader built, so nothing is parsed or rebuilt; every key given out
 * is a {@link KeyWrapper#cloneKey() copy}, because callers modify the keys they get (e.g. set the
 * algorithm).
 *
 * <p>Failures look as they do with Keycloak's Infinispan storage: a load that fails with nothing
 * usable cached throws {@code RuntimeException("Error when loading public keys: ...")}, which
 * client authentication turns into {@code invalid_client} and identity brokering into a failed
 * signature check.
 */
final class NativePublicKeyStorageProvider implements PublicKeyStorageProvider {

    private static final Logger LOG = Logger.getLogger(NativePublicKeyStorageProvider.class);

    /** The longest failure reason handed to the native cache (its contract). */
    static final int MAX_REASON_LENGTH = 500;

    private final KeycloakSession session;
    private final NativePublicKeyStorageProviderFactory factory;

    private final Set<String> sourceKeysToEvict = new LinkedHashSet<>();
    private final Set<String> prefixesToEvict = new LinkedHashSet<>();
    private boolean evictionEnlisted;

    NativePublicKeyStorageProvider(KeycloakSession session, NativePublicKeyStorageProviderFactory factory) {
        this.session = session;
        this.factory = factory;
    }

    @Override
    public KeyWrapper getPublicKey(String modelKey, String kid, String algorithm, PublicKeyLoader loader) {
        CachedPublicKeys cached = cached(modelKey);
        KeyWrapper key = cached == null ? null : cached.keyByKidAndAlg(kid, algorithm);
        if (key != null) {
            return key.cloneKey();
        }
        CachedPublicKeys current = reload(modelKey, loader, null);
        // A throttled reload answers with the very keys just searched (immutable): searching
        // them again would find nothing again.
        key = current == null || current == cached ? null : current.keyByKidAndAlg(kid, algorithm);
        if (key != null) {
            return key.cloneKey();
        }
        // The flood's hot path: with WARN off (and so DEBUG), neither list the kids nor log.
        if (LOG.isEnabled(Logger.Level.WARN)) {
            List<String> availableKids = current == null ? Collections.emptyList() : current.keys().getKids();
            UnknownKidLog.log(LOG, modelKey, kid, availableKids);
        }
        return null;
    }

    @Override
    public KeyWrapper getFirstPublicKey(String modelKey, String algorithm, PublicKeyLoader loader) {
        return getPublicKey(modelKey, null, algorithm, loader);
    }

    @Override
    public KeyWrapper getFirstPublicKey(String modelKey, Predicate<KeyWrapper> predicate, PublicKeyLoader loader) {
        CachedPublicKeys cached = cached(modelKey);
        KeyWrapper key = cached == null ? null : cached.keys().getKeyByPredicate(predicate);
        if (key != null) {
            return key.cloneKey();
        }
        CachedPublicKeys current = reload(modelKey, loader, null);
        key = current == null ? null : current.keys().getKeyByPredicate(predicate);
        return key == null ? null : key.cloneKey();
    }

    @Override
    public List<KeyWrapper> getKeys(String modelKey, PublicKeyLoader loader) {
        CachedPublicKeys current = cached(modelKey);
        if (current == null) {
            current = reload(modelKey, loader, null);
        }
        List<KeyWrapper> copies = new ArrayList<>();
        if (current != null) {
            for (KeyWrapper key : current.keys().getKeys()) {
                copies.add(key.cloneKey());
            }
        }
        return copies;
    }

    /**
     * @return true when a load ran for this call: by this thread, or by another one whose result
     *         this call received (as Keycloak's answer for a reload that was allowed); false when
     *         the cache throttled the reload or kept serving the last good keys after a failure
     */
    @Override
    public boolean reloadKeys(String modelKey, PublicKeyLoader loader) {
        CachedPublicKeys before = cached(modelKey);
        boolean[] loadedHere = {false};
        CachedPublicKeys after = reload(modelKey, loader, loadedHere);
        return loadedHere[0] || (after != null && before != null && after != before);
    }

    @Override
    public void close() {
    }

    /** Evicts the sources and prefixes here and on every node once this session's transaction ends. */
    void evictAfterTransaction(Collection<String> sourceKeys, Collection<String> prefixes) {
        if (!evictionEnlisted) {
            session.getTransactionManager().enlistAfterCompletion(new EvictionAfterCompletion());
            evictionEnlisted = true;
        }
        sourceKeysToEvict.addAll(sourceKeys);
        prefixesToEvict.addAll(prefixes);
    }

    private CachedPublicKeys cached(String modelKey) {
        factory.ensureConfigured(session);
        return Native.cachedPublicKeys(modelKey);
    }

    /**
     * @param loadedHere if not null, its element is set when this thread's load succeeded
     */
    private CachedPublicKeys reload(String modelKey, PublicKeyLoader loader, boolean[] loadedHere) {
        factory.ensureConfigured(session);
        try {
            ReloadStart start = Native.beginPublicKeyReload(modelKey);
            return start.leads() ? lead(modelKey, loader, start.permit(), loadedHere) : start.answer();
        } catch (NativeException e) {
            throw new RuntimeException("Error when loading public keys: " + e.detail(), e);
        }
    }

    /**
     * Loads the keys under {@code permit} and ends the permit: completed with the keys, or failed
     * with the exception, which the cache answers with the last good keys or
     * PUBLIC_KEYS_UNAVAILABLE. Callers of the same source wait in the native cache meanwhile.
     */
    private CachedPublicKeys lead(String modelKey, PublicKeyLoader loader, long permit, boolean[] loadedHere) {
        boolean ended = false;
        try {
            CachedPublicKeys loaded;
            try {
                loaded = load(modelKey, loader);
            } catch (Exception e) {
                ended = true;
                return Native.failPublicKeyReload(permit, describe(e));
            }
            ended = true;
            CachedPublicKeys stored = Native.completePublicKeyReload(permit, loaded);
            if (loadedHere != null) {
                loadedHere[0] = true;
            }
            return stored;
        } finally {
            if (!ended) {
                // An Error (OutOfMemoryError, StackOverflowError, ...) is on its way up: release the
                // waiting callers now rather than when the permit expires.
                failQuietly(permit, modelKey);
            }
        }
    }

    private static void failQuietly(long permit, String modelKey) {
        try {
            Native.failPublicKeyReload(permit, "the load of " + modelKey + " ended with an error");
        } catch (RuntimeException e) {
            LOG.debugf("Releasing the reload permit of %s after an error: %s", modelKey, e.getMessage());
        }
    }

    /**
     * What the cache records and reports about a failed load: class and message, as the loader's
     * exception says them (Keycloak's loaders do not put secrets in their messages), bounded.
     */
    static String describe(Exception e) {
        String description = e.getClass().getName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        return description.length() <= MAX_REASON_LENGTH ? description : description.substring(0, MAX_REASON_LENGTH);
    }

    /** Runs on this thread when the cache lets this caller lead the load. */
    private CachedPublicKeys load(String modelKey, PublicKeyLoader loader) throws Exception {
        JwksDownloadSource download = JwksDownloadSource.resolve(session, modelKey, loader);
        PublicKeysWrapper keys;
        if (download != null) {
            LOG.debugf("Reloading keys for model key '%s': %s, downloaded natively", modelKey, download);
            keys = JwksKeyWrappers.download(download.url, download.use, modelKey);
        } else {
            LOG.debugf("Reloading keys for model key '%s' with %s", modelKey, loader.getClass().getName());
            keys = loader.loadKeys();
            if (keys == null) {
                throw new IllegalStateException(loader.getClass().getName() + " returned no key set");
            }
            // Shared by every later hit: keep the list out of the loader's hands. An immutable
            // copy (nulls kept, as the loader gave them) rather than a view: Keycloak's key
            // selection streams it on every hit, and a view adds a wrapper to each stream.
            keys = new PublicKeysWrapper(keys.getKeys().stream().toList(), keys.getExpirationTime());
        }
        LOG.debugf("Public keys retrieved successfully for model %s. New kids: %s", modelKey, keys.getKids());
        Long expiresAt = keys.getExpirationTime();
        return new CachedPublicKeys(keys, expiresAt == null ? 0L : expiresAt);
    }

    /** Runs the collected evictions when the transaction ends, committed or not (as Infinispan's storage). */
    private final class EvictionAfterCompletion implements KeycloakTransaction {

        @Override
        public void begin() {
        }

        @Override
        public void commit() {
            evictNow();
        }

        @Override
        public void rollback() {
            evictNow();
        }

        @Override
        public void setRollbackOnly() {
        }

        @Override
        public boolean getRollbackOnly() {
            return false;
        }

        @Override
        public boolean isActive() {
            return true;
        }

        private void evictNow() {
            List<String> sourceKeys = List.copyOf(sourceKeysToEvict);
            List<String> prefixes = List.copyOf(prefixesToEvict);
            sourceKeysToEvict.clear();
            prefixesToEvict.clear();
            PublicKeyCacheEvictions.evictEverywhere(session, sourceKeys, prefixes);
        }
    }
}
