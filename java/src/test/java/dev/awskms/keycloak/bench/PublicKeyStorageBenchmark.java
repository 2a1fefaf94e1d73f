package dev.awskms.keycloak.bench;

import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.internal.CachedPublicKeys;
import dev.awskms.keycloak.publickeys.NativePublicKeyStorageProviderFactory;
import org.infinispan.Cache;
import org.infinispan.commons.dataconversion.MediaType;
import org.infinispan.configuration.cache.ConfigurationBuilder;
import org.infinispan.configuration.global.GlobalConfigurationBuilder;
import org.infinispan.manager.DefaultCacheManager;
import org.infinispan.protostream.SerializationContext;
import org.infinispan.protostream.SerializationContextInitializer;
import org.keycloak.Config;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.keys.PublicKeyLoader;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.keys.infinispan.InfinispanPublicKeyStorageProvider;
import org.keycloak.keys.infinispan.PublicKeysEntry;
import org.keycloak.models.KeycloakSession;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@code PublicKeyStorageProvider} lookups of {@code native-lru} beside Keycloak's own
 * {@link InfinispanPublicKeyStorageProvider} over a local Infinispan cache configured as Keycloak's
 * {@code keys} cache, in the same JVM and run. Compare the pairs ({@code *Native} / {@code *Infinispan}),
 * not the absolute times. Run with scripts/bench.sh; results and how to read them: BENCHMARKS.md.
 *
 * <p>Both storages hold the same keys of one source, loaded once in {@link #setUp()} by a loader that
 * counts its calls; {@link #checkNothingReloaded()} fails the run if any measured call loaded again.
 * The reload window is an hour for both, so every unknown-kid call falls inside it (throttled).
 * Logging is off for both: the unknown-kid path logs Keycloak's "PublicKey wasn't found" warning on
 * every call in both storages, and formatting it would only add the same cost to both sides.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 3, jvmArgsAppend = {"-Xms256m", "-Xmx256m"})
public class PublicKeyStorageBenchmark {

    /** A client's signature keys, in Keycloak's model key format. */
    static final String SOURCE = "bench-realm::client::6a1c1a0e-bench-client::keyuse::SIG";
    /** The reload window of both storages: longer than any run, so unknown kids are always throttled. */
    static final int MIN_SECONDS_BETWEEN_RELOADS = 3600;
    /** As Keycloak's {@code maxCacheTime} default. */
    static final int MAX_CACHE_SECONDS = 24 * 60 * 60;

    static final String KNOWN_KID = "rsa-current";
    static final String UNKNOWN_KID = "bogus-kid";

    /** Keeps JUL's root logger (and so jboss-logging's JDK backend) switched off while the fork runs. */
    private static final java.util.logging.Logger ROOT_LOGGER = java.util.logging.Logger.getLogger("");

    private final CountingLoader nativeLoader = new CountingLoader();
    private final CountingLoader infinispanLoader = new CountingLoader();

    private PublicKeyStorageProvider nativeStorage;
    private PublicKeyStorageProvider infinispanStorage;
    private DefaultCacheManager cacheManager;
    /** The floor both storages share: Keycloak's key selection plus the copy handed to the caller. */
    private PublicKeysWrapper plainKeys;
    /** The same keys as native-lru keeps them, for its own selection without the cache. */
    private CachedPublicKeys plainCachedKeys;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        ROOT_LOGGER.setLevel(java.util.logging.Level.OFF);
        List<KeyWrapper> keys = jwksLikeKeys();
        nativeLoader.keys = keys;
        infinispanLoader.keys = keys;
        plainKeys = new PublicKeysWrapper(keys);
        plainCachedKeys = new CachedPublicKeys(plainKeys, 0);

        KeycloakSession session = session();

        NativePublicKeyStorageProviderFactory nativeFactory = new NativePublicKeyStorageProviderFactory();
        nativeFactory.init(options(Map.of("minTimeBetweenRequests", String.valueOf(MIN_SECONDS_BETWEEN_RELOADS))));
        nativeStorage = nativeFactory.create(session);

        GlobalConfigurationBuilder global = new GlobalConfigurationBuilder().nonClusteredDefault();
        // A local object cache marshals nothing. Naming any initializer stops Infinispan from discovering
        // Keycloak's (in keycloak-model-infinispan), whose model classes this classpath does not have.
        global.serialization().addContextInitializer(new NoSchemas());
        cacheManager = new DefaultCacheManager(global.build());
        cacheManager.defineConfiguration("keys", keycloakKeysCache());
        Cache<String, PublicKeysEntry> keysCache = cacheManager.getCache("keys");
        infinispanStorage = new InfinispanPublicKeyStorageProvider(session, keysCache, new ConcurrentHashMap<>(),
                MIN_SECONDS_BETWEEN_RELOADS, MAX_CACHE_SECONDS);

        // The one load of each storage; everything measured afterwards is a hit or a throttled miss.
        for (PublicKeyStorageProvider storage : List.of(nativeStorage, infinispanStorage)) {
            PublicKeyLoader loader = storage == nativeStorage ? nativeLoader : infinispanLoader;
            KeyWrapper key = storage.getPublicKey(SOURCE, KNOWN_KID, Algorithm.RS256, loader);
            if (key == null || !KNOWN_KID.equals(key.getKid())) {
                throw new IllegalStateException(storage.getClass().getSimpleName() + " did not find " + KNOWN_KID);
            }
            if (storage.getPublicKey(SOURCE, UNKNOWN_KID, Algorithm.RS256, loader) != null) {
                throw new IllegalStateException(storage.getClass().getSimpleName() + " found " + UNKNOWN_KID);
            }
        }
        checkNothingReloaded();
    }

    @TearDown(Level.Trial)
    public void checkNothingReloaded() {
        if (nativeLoader.calls.get() != 1 || infinispanLoader.calls.get() != 1) {
            throw new IllegalStateException("expected exactly one load per storage, got native "
                    + nativeLoader.calls.get() + ", infinispan " + infinispanLoader.calls.get()
                    + ": the measurement is not of hits / throttled misses");
        }
    }

    @TearDown(Level.Trial)
    public void stopInfinispan() {
        if (cacheManager != null) {
            cacheManager.stop();
        }
    }

    // (a) Hit: a known kid whose keys are cached.

    @Benchmark
    public KeyWrapper hitNative() {
        return nativeStorage.getPublicKey(SOURCE, KNOWN_KID, Algorithm.RS256, nativeLoader);
    }

    @Benchmark
    public KeyWrapper hitInfinispan() {
        return infinispanStorage.getPublicKey(SOURCE, KNOWN_KID, Algorithm.RS256, infinispanLoader);
    }

    /** Not a storage: what any storage must do on a hit (select, then copy), for scale. */
    @Benchmark
    public KeyWrapper hitFloorSelectAndClone() {
        return plainKeys.getKeyByKidAndAlg(KNOWN_KID, Algorithm.RS256).cloneKey();
    }

    /** Not a storage: native-lru's selection (the same key, no streams) plus the copy, for scale. */
    @Benchmark
    public KeyWrapper hitFloorNativeSelectionAndClone() {
        return plainCachedKeys.keyByKidAndAlg(KNOWN_KID, Algorithm.RS256).cloneKey();
    }

    // (b) Unknown kid inside the reload window: throttled, nothing loads, null comes back.

    @Benchmark
    public KeyWrapper unknownKidThrottledNative() {
        return nativeStorage.getPublicKey(SOURCE, UNKNOWN_KID, Algorithm.RS256, nativeLoader);
    }

    @Benchmark
    public KeyWrapper unknownKidThrottledInfinispan() {
        return infinispanStorage.getPublicKey(SOURCE, UNKNOWN_KID, Algorithm.RS256, infinispanLoader);
    }

    // (c) Hits from two threads at once (the machine has two cores, shared).

    @Benchmark
    @Threads(2)
    public KeyWrapper hitTwoThreadsNative() {
        return hitNative();
    }

    @Benchmark
    @Threads(2)
    public KeyWrapper hitTwoThreadsInfinispan() {
        return hitInfinispan();
    }

    /** Keycloak's {@code keys} cache (cache-ispn.xml): local, simple, object storage, 1000 entries, 1 h max idle. */
    static org.infinispan.configuration.cache.Configuration keycloakKeysCache() {
        ConfigurationBuilder keys = new ConfigurationBuilder();
        keys.simpleCache(true);
        keys.encoding().key().mediaType(MediaType.APPLICATION_OBJECT_TYPE);
        keys.encoding().value().mediaType(MediaType.APPLICATION_OBJECT_TYPE);
        keys.memory().maxCount(1000);
        keys.expiration().maxIdle(3_600_000, TimeUnit.MILLISECONDS);
        return keys.build();
    }

    /** A JWKS as an identity provider publishes it: a previous and a current RSA key, and an EC key. */
    static List<KeyWrapper> jwksLikeKeys() throws Exception {
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA");
        rsa.initialize(2048);
        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC");
        ec.initialize(256);
        List<KeyWrapper> keys = new ArrayList<>();
        keys.add(key("rsa-previous", KeyType.RSA, Algorithm.RS256, rsa.generateKeyPair()));
        keys.add(key(KNOWN_KID, KeyType.RSA, Algorithm.RS256, rsa.generateKeyPair()));
        keys.add(key("ec-current", KeyType.EC, Algorithm.ES256, ec.generateKeyPair()));
        return List.copyOf(keys);
    }

    private static KeyWrapper key(String kid, String type, String algorithm, KeyPair pair) {
        PublicKey publicKey = pair.getPublic();
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        key.setType(type);
        key.setAlgorithm(algorithm);
        key.setUse(KeyUse.SIG);
        key.setPublicKey(publicKey);
        return key;
    }

    /** What both storages touch in a session outside eviction: no truststore, no cluster. */
    private static KeycloakSession session() {
        return KeycloakStubs.stub(KeycloakSession.class, (proxy, method, args) -> method.getName().equals("getProvider")
                ? null
                : KeycloakStubs.unsupported(KeycloakSession.class, method.getName()));
    }

    /** Server options as {@code --spi-public-key-storage--native-lru--*} would give them. */
    private static Config.Scope options(Map<String, String> values) {
        return KeycloakStubs.stub(Config.Scope.class, (proxy, method, args) -> {
            // get*(key) answers null for an option that is not set, get*(key, default) the default.
            String value = args != null && args.length > 0 ? values.get((String) args[0]) : null;
            Object unset = args != null && args.length == 2 ? args[1] : null;
            switch (method.getName()) {
                case "getInt":
                    return value != null ? Integer.valueOf(value) : unset;
                case "getBoolean":
                    return value != null ? Boolean.valueOf(value) : unset;
                case "get":
                    return value != null ? value : unset;
                default:
                    return KeycloakStubs.unsupported(Config.Scope.class, method.getName());
            }
        });
    }

    /** Registers nothing (see {@link #setUp()}). */
    static final class NoSchemas implements SerializationContextInitializer {
        @Override
        public void registerSchema(SerializationContext context) {
        }

        @Override
        public void registerMarshallers(SerializationContext context) {
        }
    }

    /** Returns the same keys on every call, in a new wrapper as a real loader would, and counts the calls. */
    static final class CountingLoader implements PublicKeyLoader {
        final AtomicInteger calls = new AtomicInteger();
        volatile List<KeyWrapper> keys;

        @Override
        public PublicKeysWrapper loadKeys() {
            calls.incrementAndGet();
            return new PublicKeysWrapper(keys);
        }
    }
}
