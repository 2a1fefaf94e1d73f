package dev.awskms.keycloak.publickeys;

import java.util.ArrayList;
import java.util.List;

import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.cluster.ClusterProvider;
import org.keycloak.jose.jwk.JWK;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.keys.PublicKeyStorageProviderFactory;
import org.keycloak.keys.PublicKeyStorageUtils;
import org.keycloak.models.ClientModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderEvent;

/**
 * Public key storage {@value #ID}: client and identity-provider keys in the native LRU cache
 * instead of Keycloak's Infinispan {@code keys} cache. Its {@link #order()} makes it the default
 * once the JAR is installed; {@code --spi-public-key-storage--provider=infinispan} selects
 * Keycloak's again.
 *
 * <p>Keycloak instantiates factories while it builds the server, so nothing here touches native
 * code before {@link #init}: there, options the operator set are handed to the native cache, which
 * checks them, so that a bad value stops the server at startup. {@link #ensureConfigured} hands the
 * options and the trusted certificates to the native cache once, on the first lookup.
 *
 * <p>Invalidation: a client or identity provider that is updated or removed, and a realm that is
 * removed, have their cached keys evicted when the transaction ends, on this node and on every
 * other one ({@link PublicKeyCacheEvictions}).
 */
public final class NativePublicKeyStorageProviderFactory
        implements PublicKeyStorageProviderFactory<NativePublicKeyStorageProvider> {

    public static final String ID = "native-lru";

    /** Above Infinispan's 0, so that Keycloak picks this provider when none is configured. */
    static final int ORDER = 100;

    private static final Logger LOG = Logger.getLogger(NativePublicKeyStorageProviderFactory.class);

    private volatile PublicKeyCachePolicy policy = PublicKeyCachePolicy.ALL_DEFAULTS;
    private volatile boolean configured;
    private final Object configureLock = new Object();

    @Override
    public NativePublicKeyStorageProvider create(KeycloakSession session) {
        return new NativePublicKeyStorageProvider(session, this);
    }

    /**
     * Reads the options; if any is set, the native cache checks them now (loading the library), so
     * that a value it refuses stops the server with the option's name.
     *
     * @throws IllegalArgumentException naming the refused option
     */
    @Override
    public void init(Config.Scope config) {
        policy = PublicKeyCachePolicy.from(config);
        LOG.debugf("Public key storage %s options: %s", ID, policy);
        if (!policy.isEmpty()) {
            try {
                Native.configurePublicKeyCache(policy.toNativeJson());
            } catch (NativeException e) {
                throw policy.refused(e);
            }
        }
    }

    @Override
    public void postInit(KeycloakSessionFactory sessionFactory) {
        sessionFactory.register(this::onProviderEvent);
    }

    @Override
    public void close() {
    }

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public int order() {
        return ORDER;
    }

    @Override
    public List<ProviderConfigProperty> getConfigMetadata() {
        return PublicKeyCachePolicy.CONFIG_METADATA;
    }

    /**
     * Configures the native cache with this factory's options and the server's trusted certificates,
     * and starts listening to other nodes' evictions; once, on the first lookup. A failure (the
     * library does not load) is thrown to that lookup and tried again on the next one.
     */
    void ensureConfigured(KeycloakSession session) {
        if (configured) {
            return;
        }
        synchronized (configureLock) {
            if (configured) {
                return;
            }
            Native.configurePublicKeyCache(policy.toNativeJson(TrustedCertificates.forJwksDownloads(session)));
            registerClusterListeners(session);
            configured = true;
            LOG.infof("Public key storage %s in use: %s", ID, policy);
        }
    }

    private static void registerClusterListeners(KeycloakSession session) {
        try {
            ClusterProvider cluster = session.getProvider(ClusterProvider.class);
            if (cluster != null) {
                PublicKeyCacheEvictions.registerClusterListeners(cluster);
            } else {
                LOG.debugf("No cluster provider: evictions of %s stay on this node", ID);
            }
        } catch (RuntimeException e) {
            LOG.warnf(e, "Could not listen to other nodes' public key evictions; their changes reach this node "
                    + "when cached keys expire");
        }
    }

    /** Queues evictions for the model changes that make cached keys wrong. */
    void onProviderEvent(ProviderEvent event) {
        KeycloakSession session;
        List<String> sourceKeys = new ArrayList<>();
        List<String> prefixes = new ArrayList<>();
        if (event instanceof ClientModel.ClientUpdatedEvent) {
            ClientModel.ClientUpdatedEvent updated = (ClientModel.ClientUpdatedEvent) event;
            session = updated.getKeycloakSession();
            addClientKeys(sourceKeys, updated.getUpdatedClient());
        } else if (event instanceof ClientModel.ClientRemovedEvent) {
            ClientModel.ClientRemovedEvent removed = (ClientModel.ClientRemovedEvent) event;
            session = removed.getKeycloakSession();
            addClientKeys(sourceKeys, removed.getClient());
        } else if (event instanceof ClientModel.ClientIdChangeEvent) {
            // SAML clients' keys are cached under the clientId; drop the entry of the old one.
            ClientModel.ClientIdChangeEvent changed = (ClientModel.ClientIdChangeEvent) event;
            session = changed.getKeycloakSession();
            addClientKeys(sourceKeys, changed.getUpdatedClient().getRealm().getId(), changed.getPreviousClientId());
        } else if (event instanceof RealmModel.IdentityProviderUpdatedEvent) {
            RealmModel.IdentityProviderUpdatedEvent updated = (RealmModel.IdentityProviderUpdatedEvent) event;
            session = updated.getKeycloakSession();
            sourceKeys.add(PublicKeyStorageUtils.getIdpModelCacheKey(updated.getRealm().getId(),
                    updated.getUpdatedIdentityProvider().getInternalId()));
        } else if (event instanceof RealmModel.IdentityProviderRemovedEvent) {
            RealmModel.IdentityProviderRemovedEvent removed = (RealmModel.IdentityProviderRemovedEvent) event;
            session = removed.getKeycloakSession();
            sourceKeys.add(PublicKeyStorageUtils.getIdpModelCacheKey(removed.getRealm().getId(),
                    removed.getRemovedIdentityProvider().getInternalId()));
        } else if (event instanceof RealmModel.RealmRemovedEvent) {
            RealmModel.RealmRemovedEvent removed = (RealmModel.RealmRemovedEvent) event;
            session = removed.getKeycloakSession();
            prefixes.add(realmPrefix(removed.getRealm().getId()));
        } else {
            return;
        }
        LOG.debugf("Evicting public keys of %s and of %s after the transaction", sourceKeys, prefixes);
        PublicKeyStorageProvider provider = session.getProvider(PublicKeyStorageProvider.class, ID);
        ((NativePublicKeyStorageProvider) provider).evictAfterTransaction(sourceKeys, prefixes);
    }

    /** The start of every model key of a realm. */
    static String realmPrefix(String realmId) {
        return realmId + "::";
    }

    /**
     * Both key uses, under the client's id (OIDC) and under its clientId (SAML's metadata keys,
     * keycloak/keycloak#52106).
     */
    private static void addClientKeys(List<String> sourceKeys, ClientModel client) {
        String realmId = client.getRealm().getId();
        addClientKeys(sourceKeys, realmId, client.getId());
        if (client.getClientId() != null && !client.getClientId().equals(client.getId())) {
            addClientKeys(sourceKeys, realmId, client.getClientId());
        }
    }

    @SuppressWarnings("deprecation") // JWK.Use: PublicKeyStorageUtils, which defines the model keys, takes no other type.
    private static void addClientKeys(List<String> sourceKeys, String realmId, String clientIdOrUuid) {
        sourceKeys.add(PublicKeyStorageUtils.getClientModelCacheKey(realmId, clientIdOrUuid, JWK.Use.SIG));
        sourceKeys.add(PublicKeyStorageUtils.getClientModelCacheKey(realmId, clientIdOrUuid, JWK.Use.ENCRYPTION));
    }
}
