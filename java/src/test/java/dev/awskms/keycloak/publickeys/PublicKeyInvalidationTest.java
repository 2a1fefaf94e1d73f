package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import dev.awskms.keycloak.publickeys.NativePublicKeyStorageProviderTest.CountingLoader;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.cluster.ClusterEvent;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.keys.infinispan.PublicKeyStorageInvalidationEvent;
import org.keycloak.models.ClientModel;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.cache.CachePublicKeyProvider;
import org.keycloak.models.cache.infinispan.ClearCacheEvent;

/**
 * Cached keys go when the model they came from changes: after the transaction, on this node and,
 * through the cluster, on the others; and "Clear keys cache" empties every node's cache.
 */
@DisplayName("Invalidating cached public keys")
class PublicKeyInvalidationTest {

    private static final Map<String, String> OPTIONS = Map.of(PublicKeyCachePolicy.MIN_TIME_BETWEEN_REQUESTS_KEY, "3600");
    private static final KeyWrapper KEY = TestKeys.wrapper("kid-1", Algorithm.RS256, TestKeys.rsa().getPublic());

    private static PublicKeyStubs.World world;

    private RealmModel realm;
    private ClientModel client;
    private String sigSource;
    private String encSource;
    private String clientIdSource;
    private String idpSource;
    private IdentityProviderModel identityProvider;

    @BeforeAll
    static void createStorage() {
        world = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(OPTIONS));
    }

    @BeforeEach
    void newRealm() {
        realm = PublicKeyStubs.realm("realm-" + UUID.randomUUID());
        client = PublicKeyStubs.client(realm, UUID.randomUUID().toString(), "app-" + UUID.randomUUID(), Map.of());
        world.add(realm);
        world.add(client);
        sigSource = realm.getId() + "::client::" + client.getId() + "::keyuse::SIG";
        encSource = realm.getId() + "::client::" + client.getId() + "::keyuse::ENCRYPTION";
        clientIdSource = realm.getId() + "::client::" + client.getClientId() + "::keyuse::SIG";
        identityProvider = new IdentityProviderModel();
        identityProvider.setInternalId(UUID.randomUUID().toString());
        identityProvider.setAlias("upstream");
        idpSource = realm.getId() + "::idp::" + identityProvider.getInternalId();
        world.cluster.sent.clear();
    }

    /** Loads each source once through {@code loader}, then checks it is cached. */
    private static void loadAll(CountingLoader loader, String... sources) {
        PublicKeyStorageProvider storage = world.session(null).storage();
        for (String source : sources) {
            storage.getPublicKey(source, "kid-1", Algorithm.RS256, loader);
        }
        int loaded = loader.calls.get();
        for (String source : sources) {
            storage.getPublicKey(source, "kid-1", Algorithm.RS256, loader);
        }
        assertEquals(loaded, loader.calls.get(), "the sources are cached");
    }

    /** How many of the sources load again when looked up now. */
    private static int reloadedOf(String... sources) {
        PublicKeyStorageProvider storage = world.session(null).storage();
        int reloaded = 0;
        for (String source : sources) {
            CountingLoader probe = new CountingLoader(KEY);
            storage.getPublicKey(source, "kid-1", Algorithm.RS256, probe);
            reloaded += probe.calls.get();
        }
        return reloaded;
    }

    private Set<String> sent(String taskKey) {
        return world.cluster.sent.stream()
                .filter(entry -> entry.getKey().equals(taskKey))
                .map(entry -> ((PublicKeyStorageInvalidationEvent) entry.getValue()).getCacheKey())
                .collect(Collectors.toSet());
    }

    @Test
    @DisplayName("an updated client loses its cached keys of both uses once the transaction ends, on every node")
    void clientUpdateEvictsAfterCommit() {
        loadAll(new CountingLoader(KEY), sigSource, encSource, clientIdSource);
        PublicKeyStubs.FakeSession admin = world.session(realm);

        world.storageFactory.onProviderEvent(new ClientModel.ClientUpdatedEvent() {
            @Override
            public ClientModel getUpdatedClient() {
                return client;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return admin.session;
            }
        });
        assertEquals(0, reloadedOf(sigSource, encSource, clientIdSource), "nothing happens before the transaction ends");
        assertTrue(world.cluster.sent.isEmpty());

        admin.commit();

        assertEquals(3, reloadedOf(sigSource, encSource, clientIdSource));
        assertTrue(sent(PublicKeyCacheEvictions.EVICT_TASK_KEY).containsAll(List.of(sigSource, encSource, clientIdSource)),
                world.cluster.sent.toString());
    }

    @Test
    @DisplayName("a rolled-back change evicts too, as Keycloak's own storage does")
    void rollbackEvictsToo() {
        loadAll(new CountingLoader(KEY), sigSource);
        PublicKeyStubs.FakeSession admin = world.session(realm);
        world.storageFactory.onProviderEvent(new ClientModel.ClientRemovedEvent() {
            @Override
            public ClientModel getClient() {
                return client;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return admin.session;
            }
        });
        admin.rollback();
        assertEquals(1, reloadedOf(sigSource));
    }

    @Test
    @DisplayName("an updated or removed identity provider loses its cached keys")
    void identityProviderChangesEvict() {
        loadAll(new CountingLoader(KEY), idpSource, sigSource);
        PublicKeyStubs.FakeSession admin = world.session(realm);
        world.storageFactory.onProviderEvent(new RealmModel.IdentityProviderUpdatedEvent() {
            @Override
            public RealmModel getRealm() {
                return realm;
            }

            @Override
            public IdentityProviderModel getUpdatedIdentityProvider() {
                return identityProvider;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return admin.session;
            }
        });
        admin.commit();
        assertEquals(1, reloadedOf(idpSource), "the identity provider's keys load again");
        assertEquals(0, reloadedOf(sigSource), "the client's stay");

        PublicKeyStubs.FakeSession remover = world.session(realm);
        world.storageFactory.onProviderEvent(new RealmModel.IdentityProviderRemovedEvent() {
            @Override
            public RealmModel getRealm() {
                return realm;
            }

            @Override
            public IdentityProviderModel getRemovedIdentityProvider() {
                return identityProvider;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return remover.session;
            }
        });
        remover.commit();
        assertEquals(1, reloadedOf(idpSource));
        assertTrue(sent(PublicKeyCacheEvictions.EVICT_TASK_KEY).contains(idpSource));
    }

    @Test
    @DisplayName("a removed realm loses every cached source, and other realms keep theirs")
    void realmRemovalEvictsTheRealm() {
        RealmModel otherRealm = PublicKeyStubs.realm("realm-" + UUID.randomUUID());
        String otherSource = otherRealm.getId() + "::idp::" + UUID.randomUUID();
        loadAll(new CountingLoader(KEY), sigSource, encSource, idpSource, otherSource);
        PublicKeyStubs.FakeSession admin = world.session(null);

        world.storageFactory.onProviderEvent(new RealmModel.RealmRemovedEvent() {
            @Override
            public RealmModel getRealm() {
                return realm;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return admin.session;
            }
        });
        admin.commit();

        assertEquals(3, reloadedOf(sigSource, encSource, idpSource));
        assertEquals(0, reloadedOf(otherSource));
        assertEquals(Set.of(realm.getId() + "::"), sent(PublicKeyCacheEvictions.EVICT_PREFIX_TASK_KEY));
    }

    @Test
    @DisplayName("evictions another node reports reach this node's cache")
    void evictionsFromOtherNodesApply() {
        loadAll(new CountingLoader(KEY), sigSource, encSource, idpSource);

        world.cluster.receive(PublicKeyCacheEvictions.EVICT_TASK_KEY, PublicKeyStorageInvalidationEvent.create(sigSource));
        assertEquals(1, reloadedOf(sigSource));
        assertEquals(0, reloadedOf(encSource, idpSource));

        world.cluster.receive(PublicKeyCacheEvictions.EVICT_PREFIX_TASK_KEY,
                PublicKeyStorageInvalidationEvent.create(realm.getId() + "::"));
        assertEquals(2, reloadedOf(encSource, idpSource));
    }

    @Test
    @DisplayName("'Clear keys cache' empties this node's cache, tells the other nodes, and clears Keycloak's own key cache")
    void clearKeysCacheClearsEverything() {
        AtomicInteger infinispanClears = new AtomicInteger();
        world.otherKeyCaches.put("infinispan", new CachePublicKeyProvider() {
            @Override
            public void clearCache() {
                infinispanClears.incrementAndGet();
            }

            @Override
            public void close() {
            }
        });
        try {
            loadAll(new CountingLoader(KEY), sigSource, idpSource);

            world.session(realm).session.getProvider(CachePublicKeyProvider.class).clearCache();

            assertEquals(2, reloadedOf(sigSource, idpSource));
            assertEquals(1, infinispanClears.get());
            List<ClusterEvent> clears = world.cluster.sent.stream()
                    .filter(entry -> entry.getKey().equals(PublicKeyCacheEvictions.CLEAR_TASK_KEY))
                    .map(Map.Entry::getValue)
                    .collect(Collectors.toList());
            assertEquals(List.of(ClearCacheEvent.getInstance()), clears);
        } finally {
            world.otherKeyCaches.clear();
        }
    }

    @Test
    @DisplayName("a clear another node reports empties this node's cache")
    void clearFromOtherNodeApplies() {
        loadAll(new CountingLoader(KEY), sigSource);
        world.cluster.receive(PublicKeyCacheEvictions.CLEAR_TASK_KEY, ClearCacheEvent.getInstance());
        assertEquals(1, reloadedOf(sigSource));
    }
}
