package dev.awskms.keycloak.publickeys;

import java.lang.reflect.InvocationHandler;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;

import dev.awskms.keycloak.KeycloakStubs;
import org.keycloak.Config;
import org.keycloak.cluster.ClusterEvent;
import org.keycloak.cluster.ClusterListener;
import org.keycloak.cluster.ClusterProvider;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.models.ClientModel;
import org.keycloak.models.ClientProvider;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.IdentityProviderStorageProvider;
import org.keycloak.models.KeycloakContext;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.KeycloakTransaction;
import org.keycloak.models.KeycloakTransactionManager;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RealmProvider;
import org.keycloak.models.cache.CachePublicKeyProvider;
import org.keycloak.provider.ProviderFactory;
import org.keycloak.truststore.TruststoreProvider;

/**
 * Stand-ins for the parts of a running Keycloak that the public key storage touches. Each is a
 * {@link java.lang.reflect.Proxy} answering only what the storage uses and failing loudly on anything else, so a new
 * dependency shows up as a test failure.
 */
final class PublicKeyStubs {

    private PublicKeyStubs() {
    }

    /** Server options of the storage, as {@code --spi-public-key-storage--native-lru--*} would give them. */
    static Config.Scope options(Map<String, String> values) {
        return stub(Config.Scope.class, (proxy, method, args) -> {
            if (method.getName().equals("getInt")) {
                // getInt(key) answers null for an option that is not set, getInt(key, default) the default.
                String value = values.get((String) args[0]);
                return value != null ? Integer.valueOf(value) : args.length == 2 ? args[1] : null;
            }
            if (method.getName().equals("getBoolean")) {
                String value = values.get((String) args[0]);
                return value != null ? Boolean.valueOf(value) : args.length == 2 ? args[1] : null;
            }
            if (method.getName().equals("get")) {
                String value = values.get((String) args[0]);
                return value != null ? value : args.length == 2 ? args[1] : null;
            }
            return unsupported(Config.Scope.class, method.getName());
        });
    }

    /** A storage factory initialised with {@code options}, as Keycloak does at startup. */
    static NativePublicKeyStorageProviderFactory storageFactory(Map<String, String> options) {
        NativePublicKeyStorageProviderFactory factory = new NativePublicKeyStorageProviderFactory();
        factory.init(options(options));
        return factory;
    }

    /** A realm with an id. */
    static RealmModel realm(String id) {
        return stub(RealmModel.class, (proxy, method, args) -> method.getName().equals("getId")
                ? id
                : unsupported(RealmModel.class, method.getName()));
    }

    /** A client with ids, a realm and attributes (e.g. {@code use.jwks.url}, {@code jwks.url}). */
    static ClientModel client(RealmModel realm, String id, String clientId, Map<String, String> attributes) {
        return stub(ClientModel.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "getId":
                    return id;
                case "getClientId":
                    return clientId;
                case "getRealm":
                    return realm;
                case "getAttribute":
                    return attributes.get((String) args[0]);
                case "getRootUrl":
                    return null;
                default:
                    return unsupported(ClientModel.class, method.getName());
            }
        });
    }

    /** What a session needs to hold for the storage: the Keycloak model, a cluster, other caches. */
    static final class World {
        final FakeCluster cluster = new FakeCluster();
        final Map<String, RealmModel> realms = new HashMap<>();
        final Map<String, ClientModel> clients = new HashMap<>();
        final Map<String, IdentityProviderModel> identityProviders = new HashMap<>();
        /** Other public key caches by provider id, as Keycloak's Infinispan one. */
        final Map<String, CachePublicKeyProvider> otherKeyCaches = new HashMap<>();
        final NativePublicKeyStorageProviderFactory storageFactory;
        /** Keycloak's truststore; null: the server has none. */
        TruststoreProvider truststore;

        World(NativePublicKeyStorageProviderFactory storageFactory) {
            this.storageFactory = storageFactory;
        }

        void add(RealmModel realm) {
            realms.put(realm.getId(), realm);
        }

        void add(ClientModel client) {
            clients.put(client.getId(), client);
        }

        void add(IdentityProviderModel identityProvider) {
            identityProviders.put(identityProvider.getInternalId(), identityProvider);
        }

        /** A new session (one request), whose context realm is {@code contextRealm} (may be null). */
        FakeSession session(RealmModel contextRealm) {
            return new FakeSession(this, contextRealm);
        }
    }

    /** One session: its transaction can be committed or rolled back by the test. */
    static final class FakeSession {
        final KeycloakSession session;
        private final List<KeycloakTransaction> afterCompletion = new ArrayList<>();
        private NativePublicKeyStorageProvider storage;

        FakeSession(World world, RealmModel contextRealm) {
            KeycloakTransactionManager transactions = stub(KeycloakTransactionManager.class, (proxy, method, args) -> {
                if (method.getName().equals("enlistAfterCompletion")) {
                    afterCompletion.add((KeycloakTransaction) args[0]);
                    return null;
                }
                return unsupported(KeycloakTransactionManager.class, method.getName());
            });
            RealmProvider realms = stub(RealmProvider.class, (proxy, method, args) -> method.getName().equals("getRealm")
                    ? world.realms.get((String) args[0])
                    : unsupported(RealmProvider.class, method.getName()));
            ClientProvider clients = stub(ClientProvider.class, (proxy, method, args) -> {
                if (method.getName().equals("getClientById")) {
                    ClientModel client = world.clients.get((String) args[1]);
                    return client != null && client.getRealm().getId().equals(((RealmModel) args[0]).getId()) ? client : null;
                }
                return unsupported(ClientProvider.class, method.getName());
            });
            IdentityProviderStorageProvider identityProviders = stub(IdentityProviderStorageProvider.class,
                    (proxy, method, args) -> method.getName().equals("getById")
                            ? world.identityProviders.get((String) args[0])
                            : unsupported(IdentityProviderStorageProvider.class, method.getName()));
            KeycloakContext context = stub(KeycloakContext.class, (proxy, method, args) -> method.getName().equals("getRealm")
                    ? contextRealm
                    : unsupported(KeycloakContext.class, method.getName()));
            KeycloakSessionFactory sessionFactory = stub(KeycloakSessionFactory.class, (proxy, method, args) -> {
                if (method.getName().equals("getProviderFactoriesStream") && args[0] == CachePublicKeyProvider.class) {
                    Stream<ProviderFactory<?>> factories = Stream.concat(
                            Stream.of(new NativeCachePublicKeyProviderFactory()),
                            world.otherKeyCaches.keySet().stream().map(PublicKeyStubs::namedFactory));
                    return factories;
                }
                return unsupported(KeycloakSessionFactory.class, method.getName());
            });
            session = stub(KeycloakSession.class, (proxy, method, args) -> {
                switch (method.getName()) {
                    case "getProvider":
                        return provider((KeycloakSession) proxy, world, (Class<?>) args[0], args.length > 1 ? (String) args[1] : null);
                    case "getTransactionManager":
                        return transactions;
                    case "realms":
                        return realms;
                    case "clients":
                        return clients;
                    case "identityProviders":
                        return identityProviders;
                    case "getContext":
                        return context;
                    case "getKeycloakSessionFactory":
                        return sessionFactory;
                    default:
                        return unsupported(KeycloakSession.class, method.getName());
                }
            });
        }

        private Object provider(KeycloakSession self, World world, Class<?> type, String id) {
            if (type == ClusterProvider.class) {
                return world.cluster.provider;
            }
            if (type == PublicKeyStorageProvider.class
                    && (id == null || id.equals(NativePublicKeyStorageProviderFactory.ID))) {
                return storage(self, world);
            }
            if (type == CachePublicKeyProvider.class) {
                return id == null || id.equals(NativePublicKeyStorageProviderFactory.ID)
                        ? new NativeCachePublicKeyProviderFactory().create(self)
                        : world.otherKeyCaches.get(id);
            }
            if (type == TruststoreProvider.class) {
                return world.truststore;
            }
            return unsupported(KeycloakSession.class, "getProvider(" + type.getSimpleName() + ")");
        }

        private NativePublicKeyStorageProvider storage(KeycloakSession self, World world) {
            if (storage == null) {
                storage = world.storageFactory.create(self);
            }
            return storage;
        }

        /** The session's storage, as {@code session.getProvider(PublicKeyStorageProvider.class)}. */
        PublicKeyStorageProvider storage() {
            return session.getProvider(PublicKeyStorageProvider.class);
        }

        /** Ends the transaction as Keycloak does: the after-completion transactions run. */
        void commit() {
            afterCompletion.forEach(KeycloakTransaction::commit);
            afterCompletion.clear();
        }

        void rollback() {
            afterCompletion.forEach(KeycloakTransaction::rollback);
            afterCompletion.clear();
        }
    }

    /** A cluster that records what this node sends and lets a test deliver what other nodes send. */
    static final class FakeCluster {
        final Map<String, List<ClusterListener>> listeners = new HashMap<>();
        final List<Map.Entry<String, ClusterEvent>> sent = new CopyOnWriteArrayList<>();
        final ClusterProvider provider = stub(ClusterProvider.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "registerListener":
                    synchronized (listeners) {
                        listeners.computeIfAbsent((String) args[0], key -> new ArrayList<>()).add((ClusterListener) args[1]);
                    }
                    return null;
                case "notify":
                    if (!(args[1] instanceof Collection) || !Boolean.TRUE.equals(args[2])) {
                        return unsupported(ClusterProvider.class, "notify other than (taskKey, events, ignoreSender=true)");
                    }
                    for (Object event : (Collection<?>) args[1]) {
                        sent.add(Map.entry((String) args[0], (ClusterEvent) event));
                    }
                    return null;
                default:
                    return unsupported(ClusterProvider.class, method.getName());
            }
        });

        /** An event from another node, as Keycloak's cluster provider delivers it. */
        void receive(String taskKey, ClusterEvent event) {
            List<ClusterListener> registered;
            synchronized (listeners) {
                registered = List.copyOf(listeners.getOrDefault(taskKey, List.of()));
            }
            registered.forEach(event);
        }
    }

    private static ProviderFactory<?> namedFactory(String id) {
        return stub(ProviderFactory.class, (proxy, method, args) -> method.getName().equals("getId")
                ? id
                : unsupported(ProviderFactory.class, method.getName()));
    }

    static <T> T stub(Class<T> type, InvocationHandler handler) {
        return KeycloakStubs.stub(type, handler);
    }

    private static Object unsupported(Class<?> type, String method) {
        return KeycloakStubs.unsupported(type, method);
    }
}
