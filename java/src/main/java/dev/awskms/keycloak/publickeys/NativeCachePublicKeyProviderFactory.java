package dev.awskms.keycloak.publickeys;

import org.keycloak.Config;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.cache.CachePublicKeyProviderFactory;

/**
 * "Clear keys cache" (Realm settings → Keys, {@code POST /admin/realms/{realm}/clear-keys-cache})
 * for the native cache of {@link NativePublicKeyStorageProviderFactory}, with the same id and
 * order so that both are the defaults together.
 */
public final class NativeCachePublicKeyProviderFactory implements CachePublicKeyProviderFactory {

    @Override
    public NativeCachePublicKeyProvider create(KeycloakSession session) {
        return new NativeCachePublicKeyProvider(session);
    }

    @Override
    public void init(Config.Scope config) {
    }

    @Override
    public void postInit(KeycloakSessionFactory sessionFactory) {
    }

    @Override
    public void close() {
    }

    @Override
    public String getId() {
        return NativePublicKeyStorageProviderFactory.ID;
    }

    @Override
    public int order() {
        return NativePublicKeyStorageProviderFactory.ORDER;
    }
}
