package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.keys.PublicKeyLoader;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.util.JsonSerialization;

/**
 * What callers of Keycloak's public key storage get from {@code native-lru}: the same keys
 * Keycloak's own lookup rules ({@link PublicKeysWrapper}) select, as copies, from a cache that
 * calls the loader only when it must.
 */
@DisplayName("The native-lru public key storage")
class NativePublicKeyStorageProviderTest {

    /** A long window, so that "at most once per window" is certain while a test runs. */
    private static final Map<String, String> OPTIONS = Map.of(PublicKeyCachePolicy.MIN_TIME_BETWEEN_REQUESTS_KEY, "3600");

    private static final KeyWrapper RSA_RS256 = TestKeys.wrapper("rsa-1", Algorithm.RS256, TestKeys.rsa().getPublic());
    private static final KeyWrapper RSA_PS256 = TestKeys.wrapper("rsa-2", Algorithm.PS256, TestKeys.rsa().getPublic());
    /** Same kid as the first key, another algorithm: Keycloak prefers the exact kid+alg match. */
    private static final KeyWrapper RSA_1_PS256 = TestKeys.wrapper("rsa-1", Algorithm.PS256, TestKeys.rsa().getPublic());
    /** No algorithm, only a curve: its default algorithm is ES256. */
    private static final KeyWrapper EC_NO_ALG = ecKeyWithoutAlgorithm();
    private static final KeyWrapper CLIENT_CERTIFICATE = clientCertificateKey();

    private static PublicKeyStubs.World world;

    @BeforeAll
    static void createStorage() {
        world = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(OPTIONS));
    }

    private static KeyWrapper ecKeyWithoutAlgorithm() {
        KeyWrapper key = TestKeys.wrapper("ec-1", null, TestKeys.ecP256().getPublic());
        key.setCurve("P-256");
        return key;
    }

    private static KeyWrapper clientCertificateKey() {
        KeyWrapper key = TestKeys.wrapper("cert-1", null, TestKeys.rsa().getPublic());
        key.setIsDefaultClientCertificate(true);
        key.setUse(KeyUse.SIG);
        return key;
    }

    /** A source no other test uses: the native cache is shared by the whole JVM. */
    private static String newSource() {
        return "realm-" + UUID.randomUUID() + "::client::" + UUID.randomUUID() + "::keyuse::SIG";
    }

    private static PublicKeyStorageProvider storage() {
        return world.session(null).storage();
    }

    /** A loader that counts its calls and returns the given keys, or throws. */
    static class CountingLoader implements PublicKeyLoader {
        final AtomicInteger calls = new AtomicInteger();
        volatile List<KeyWrapper> keys;
        volatile Exception failure;

        CountingLoader(KeyWrapper... keys) {
            this.keys = List.of(keys);
        }

        @Override
        public PublicKeysWrapper loadKeys() throws Exception {
            calls.incrementAndGet();
            if (failure != null) {
                throw failure;
            }
            return new PublicKeysWrapper(keys);
        }
    }

    @ParameterizedTest(name = "kid {0}, alg {1}")
    @CsvSource(nullValues = "null", value = {
            "rsa-1, RS256",   // kid and algorithm
            "rsa-1, PS256",   // kid and algorithm: the second key with that kid
            "rsa-2, RS256",   // kid only: the algorithm differs
            "ec-1, ES256",    // kid only: the key has no algorithm
            "null, PS256",    // no kid: the first key with that algorithm
            "null, ES256",    // no kid: the algorithm of an EC key without one (its default)
            "null, RS512",    // no kid, no algorithm match: the default client certificate
    })
    @DisplayName("selects the key Keycloak's PublicKeysWrapper selects")
    void selectsTheKeyKeycloakSelects(String kid, String algorithm) {
        List<KeyWrapper> keys = List.of(RSA_RS256, RSA_PS256, RSA_1_PS256, EC_NO_ALG, CLIENT_CERTIFICATE);
        KeyWrapper expected = new PublicKeysWrapper(keys).getKeyByKidAndAlg(kid, algorithm);
        assertNotNull(expected, "the case must have an answer");

        KeyWrapper found = storage().getPublicKey(newSource(), kid, algorithm,
                new CountingLoader(keys.toArray(new KeyWrapper[0])));

        assertNotNull(found);
        assertNotSame(expected, found, "a copy, not the cached key");
        assertEquals(expected.getKid(), found.getKid());
        assertEquals(expected.getAlgorithm(), found.getAlgorithm());
        assertSame(expected.getPublicKey(), found.getPublicKey());
        assertEquals(expected.isDefaultClientCertificate(), found.isDefaultClientCertificate());
    }

    @Test
    @DisplayName("answers null for a kid the source does not have, after loading the source once")
    void unknownKidIsNull() {
        CountingLoader loader = new CountingLoader(RSA_RS256);
        assertNull(storage().getPublicKey(newSource(), "no-such-kid", Algorithm.RS256, loader));
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("calls the loader once for many lookups and never rebuilds the keys")
    void hitsDoNotCallTheLoader() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256, EC_NO_ALG);
        KeyWrapper first = storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader);
        for (int i = 0; i < 100; i++) {
            KeyWrapper again = storage().getPublicKey(source, i % 2 == 0 ? "rsa-1" : "ec-1", null, loader);
            assertNotNull(again);
            if (i % 2 == 0) {
                assertSame(first.getPublicKey(), again.getPublicKey(), "the key material is the cached object");
            }
        }
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("lets one of many concurrent first lookups load the source, and gives all of them its keys")
    void concurrentMissesLoadOnce() throws Exception {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256) {
            @Override
            public PublicKeysWrapper loadKeys() throws Exception {
                Thread.sleep(200); // long enough for the other lookups to arrive while it loads
                return super.loadKeys();
            }
        };
        int threads = 16;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<KeyWrapper>> lookups = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                lookups.add(pool.submit(() -> world.session(null).storage()
                        .getPublicKey(source, "rsa-1", Algorithm.RS256, loader)));
            }
            for (Future<KeyWrapper> lookup : lookups) {
                assertSame(RSA_RS256.getPublicKey(), lookup.get(30, TimeUnit.SECONDS).getPublicKey());
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("reloads for an unknown kid at most once per window, even for a flood of unknown kids")
    void unknownKidsReloadAtMostOncePerWindow() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256);
        assertNotNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        loader.keys = List.of(RSA_RS256, RSA_PS256);
        for (int i = 0; i < 20; i++) {
            storage().getPublicKey(source, "bogus-" + i, Algorithm.RS256, loader);
        }
        assertEquals(1, loader.calls.get(), "the first load opened the window; no reload within it");
        assertNull(storage().getPublicKey(source, "rsa-2", Algorithm.PS256, loader),
                "a key added at the source shows up only after the window");
    }

    @Test
    @DisplayName("an unknown kid inside the window costs no load, and then the known kids are found as before")
    void unknownKidInsideTheWindowThenKnownKid() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256, RSA_PS256);
        assertNotNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        for (int i = 0; i < 5; i++) {
            // The throttled reload answers with the keys the hit had: searched once, not found.
            assertNull(storage().getPublicKey(source, "bogus-" + i, Algorithm.RS256, loader));
            assertEquals("rsa-2", storage().getPublicKey(source, "rsa-2", Algorithm.PS256, loader).getKid());
        }
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("keeps its own copy of a loader's key list: later changes to the list are not seen")
    void keepsItsOwnCopyOfTheLoadersList() {
        String source = newSource();
        List<KeyWrapper> loaders = new ArrayList<>(List.of(RSA_RS256));
        PublicKeyLoader loader = () -> new PublicKeysWrapper(loaders);
        assertNotNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        loaders.clear();
        loaders.add(RSA_PS256);
        assertNotNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        assertNull(storage().getPublicKey(source, "rsa-2", Algorithm.PS256, loader));
        assertEquals(1, storage().getKeys(source, loader).size());
    }

    @Test
    @DisplayName("hands out copies: a caller changing its key changes nobody else's")
    void copiesAreIndependent() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(EC_NO_ALG);
        KeyWrapper mine = storage().getPublicKey(source, "ec-1", Algorithm.ES256, loader);
        mine.setAlgorithm(Algorithm.ES512); // as OIDCIdentityProvider.verifySignature does
        mine.setKid("changed");

        KeyWrapper theirs = storage().getPublicKey(source, "ec-1", Algorithm.ES256, loader);
        assertNull(theirs.getAlgorithm());
        assertEquals("ec-1", theirs.getKid());
        assertNull(EC_NO_ALG.getAlgorithm(), "the loader's key is untouched too");
    }

    @Test
    @DisplayName("getFirstPublicKey by algorithm is getPublicKey without a kid")
    void firstKeyByAlgorithm() {
        KeyWrapper found = storage().getFirstPublicKey(newSource(), Algorithm.PS256,
                new CountingLoader(RSA_RS256, RSA_PS256));
        assertEquals("rsa-2", found.getKid());
    }

    @Test
    @DisplayName("getFirstPublicKey by predicate returns a copy of the first match, or null")
    void firstKeyByPredicate() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256, RSA_PS256, EC_NO_ALG);
        KeyWrapper found = storage().getFirstPublicKey(source, key -> "EC".equals(key.getType()), loader);
        assertEquals("ec-1", found.getKid());
        assertNotSame(EC_NO_ALG, found);
        assertNull(storage().getFirstPublicKey(source, key -> false, loader));
    }

    @Test
    @DisplayName("getKeys returns a new list of copies of every key, each time")
    void getKeysReturnsCopies() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256, RSA_PS256, EC_NO_ALG);
        List<KeyWrapper> first = storage().getKeys(source, loader);
        List<KeyWrapper> second = storage().getKeys(source, loader);

        assertEquals(List.of("rsa-1", "rsa-2", "ec-1"), first.stream().map(KeyWrapper::getKid).toList());
        assertNotSame(first, second);
        first.clear(); // callers may change the list they get
        assertEquals(3, second.size());
        assertNotSame(second.get(0), storage().getKeys(source, loader).get(0));
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("getKeys of a source without keys is an empty, changeable list")
    void getKeysOfEmptySource() {
        List<KeyWrapper> keys = storage().getKeys(newSource(), new CountingLoader());
        assertTrue(keys.isEmpty());
        keys.add(RSA_RS256);
    }

    @Test
    @DisplayName("a failing load with nothing cached throws Keycloak's 'Error when loading public keys' with the cause")
    void loadFailureThrowsKeycloaksException() {
        CountingLoader loader = new CountingLoader();
        loader.failure = new IOException("Unexpected status = 503");

        RuntimeException e = assertThrows(RuntimeException.class,
                () -> storage().getPublicKey(newSource(), "rsa-1", Algorithm.RS256, loader));

        assertTrue(e.getMessage().startsWith("Error when loading public keys: "), e.getMessage());
        assertTrue(e.getMessage().contains("Unexpected status = 503"), e.getMessage());
        assertTrue(e.getCause() instanceof NativeException, String.valueOf(e.getCause()));
    }

    @Test
    @DisplayName("after a failed load, lookups within the window are throttled to 'not found', not retried")
    void failedLoadIsThrottled() {
        String source = newSource();
        CountingLoader loader = new CountingLoader();
        loader.failure = new IOException("connection refused");
        assertThrows(RuntimeException.class, () -> storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));

        for (int i = 0; i < 10; i++) {
            assertNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        }
        assertEquals(1, loader.calls.get(), "failures count against the window");
    }

    @Test
    @DisplayName("a lookup that waited for another lookup's failing load gets Keycloak's 'Error when loading public keys' too")
    void followerOfAFailedLoadGetsKeycloaksException() throws Exception {
        String source = newSource();
        long coalescedBefore = counter("coalesced");
        CountingLoader loader = new CountingLoader() {
            @Override
            public PublicKeysWrapper loadKeys() throws Exception {
                calls.incrementAndGet();
                // Fail only once the other lookup waits for this load (bounded, so a bug fails, not hangs).
                long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
                while (counter("coalesced") <= coalescedBefore && System.nanoTime() < giveUp) {
                    Thread.onSpinWait();
                }
                throw new IOException("Unexpected status = 502");
            }
        };
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<KeyWrapper>> lookups = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                lookups.add(pool.submit(() -> world.session(null).storage()
                        .getPublicKey(source, "rsa-1", Algorithm.RS256, loader)));
            }
            for (Future<KeyWrapper> lookup : lookups) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> lookup.get(30, TimeUnit.SECONDS));
                assertTrue(e.getCause().getMessage().startsWith("Error when loading public keys: "), e.getCause().getMessage());
                assertTrue(e.getCause().getMessage().contains("Unexpected status = 502"), e.getCause().getMessage());
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("lets an Error thrown by Keycloak's loader propagate, and ends the reload so that nobody waits for it")
    void loaderErrorPropagatesAndEndsTheReload() throws Exception {
        String source = newSource();
        long failuresBefore = counter("loadFailures");
        CountingLoader loader = new CountingLoader() {
            @Override
            public PublicKeysWrapper loadKeys() {
                calls.incrementAndGet();
                throw new StackOverflowError("a loader that recursed too deep");
            }
        };

        assertThrows(StackOverflowError.class, () -> storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));

        assertEquals(failuresBefore + 1, counter("loadFailures"), "the reload was failed, not left to expire");
        // Throttled within the window, with nothing cached: "not found" at once, rather than a wait
        // for the abandoned load until the fetch timeout and then an error.
        assertNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, loader));
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("describes a failed load to the cache by class and message, within the cache's limit")
    void describesFailuresBriefly() {
        assertEquals("java.io.IOException: Unexpected status = 503",
                NativePublicKeyStorageProvider.describe(new IOException("Unexpected status = 503")));
        assertEquals("java.lang.IllegalStateException", NativePublicKeyStorageProvider.describe(new IllegalStateException()));
        assertEquals(NativePublicKeyStorageProvider.MAX_REASON_LENGTH,
                NativePublicKeyStorageProvider.describe(new IOException("x".repeat(2000))).length());
    }

    private static long counter(String name) throws IOException {
        return JsonSerialization.mapper.readTree(Native.publicKeyCacheStats()).path(name).asLong();
    }

    @Test
    @DisplayName("reloadKeys answers true when it loaded and false when the window throttled it")
    void reloadKeysReportsWhetherItLoaded() {
        String source = newSource();
        CountingLoader loader = new CountingLoader(RSA_RS256);
        assertTrue(storage().reloadKeys(source, loader));
        assertFalse(storage().reloadKeys(source, loader));
        assertEquals(1, loader.calls.get());
    }

    @Test
    @DisplayName("keeps a source's own expiry: expired keys are loaded again")
    void sourceExpiryIsHonoured() {
        String source = newSource();
        AtomicInteger calls = new AtomicInteger();
        PublicKeyLoader expired = () -> {
            calls.incrementAndGet();
            return new PublicKeysWrapper(List.of(RSA_RS256), System.currentTimeMillis() - 1000);
        };
        assertNotNull(storage().getPublicKey(source, "rsa-1", Algorithm.RS256, expired),
                "keys that just loaded are used for this lookup");
        // Not fresh any more: the lookup asks for a reload, which the window throttles to the
        // current keys. Whether they may still be used is the native cache's policy; the loader
        // must not have been called a second time within the window.
        storage().getPublicKey(source, "rsa-1", Algorithm.RS256, expired);
        assertEquals(1, calls.get());
    }
}
