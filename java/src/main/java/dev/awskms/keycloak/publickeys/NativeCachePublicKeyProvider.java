package dev.awskms.keycloak.publickeys;

import java.util.List;
import java.util.stream.Collectors;

import org.jboss.logging.Logger;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.cache.CachePublicKeyProvider;

/**
 * Clears the native public key cache on every node, and every other public key cache the server
 * has (Keycloak's Infinispan one), so that the button clears whichever storage is selected even
 * when only {@code --spi-public-key-storage--provider} was set.
 */
final class NativeCachePublicKeyProvider implements CachePublicKeyProvider {

    private static final Logger LOG = Logger.getLogger(NativeCachePublicKeyProvider.class);

    private final KeycloakSession session;

    NativeCachePublicKeyProvider(KeycloakSession session) {
        this.session = session;
    }

    @Override
    public void clearCache() {
        PublicKeyCacheEvictions.clearEverywhere(session);
        for (String otherId : otherCacheProviderIds()) {
            try {
                CachePublicKeyProvider other = session.getProvider(CachePublicKeyProvider.class, otherId);
                if (other != null) {
                    other.clearCache();
                }
            } catch (RuntimeException e) {
                LOG.warnf(e, "Could not clear public key cache %s", otherId);
            }
        }
    }

    @Override
    public void close() {
    }

    private List<String> otherCacheProviderIds() {
        return session.getKeycloakSessionFactory().getProviderFactoriesStream(CachePublicKeyProvider.class)
                .map(factory -> factory.getId())
                .filter(id -> !NativePublicKeyStorageProviderFactory.ID.equals(id))
                .collect(Collectors.toList());
    }
}
