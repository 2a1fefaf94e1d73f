package dev.awskms.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.util.JsonSerialization;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpServer;

/**
 * The public key cache natives from Java, through the real library under -Xcheck:jni: the object
 * a loader builds is what later hits return, loader failures become NativeException, and no Java
 * exception is left pending behind a native call. Every test uses its own source keys, because the
 * cache is one per process and other test classes use it too.
 */
@DisplayName("The native public key cache bridge")
class PublicKeyCacheBridgeTest {

    /** The documented window and download timeout (which also bounds how long followers wait). */
    private static final String POLICY = "{\"minTimeBetweenRequestsMillis\":10000,\"fetchTimeoutMillis\":5000}";

    private static HttpServer jwksServer;

    @BeforeAll
    static void loadLibraryAndStartServer() throws IOException {
        NativeLibraryLoader.ensureLoaded();
        NativeBridge.publicKeyCacheConfigure(POLICY);
        jwksServer = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        jwksServer.createContext("/jwks", exchange -> {
            byte[] body = ("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"idp-1\",\"use\":\"sig\","
                    + "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                    + "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
                    + "{\"kty\":\"RSA\",\"kid\":\"private\",\"n\":\"AQAB\",\"e\":\"AQAB\",\"d\":\"AQAB\"}]}")
                    .getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        jwksServer.createContext("/moved", exchange -> {
            exchange.getResponseHeaders().add("Location", "/jwks");
            exchange.sendResponseHeaders(301, -1);
            exchange.close();
        });
        jwksServer.start();
    }

    @AfterAll
    static void stopServer() {
        if (jwksServer != null) {
            jwksServer.stop(0);
        }
    }

    private static String source() {
        return "bridge-test-" + UUID.randomUUID() + "::idp::" + UUID.randomUUID();
    }

    private static CachedPublicKeys keys(String kid) {
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        return new CachedPublicKeys(new PublicKeysWrapper(List.of(key)), 0L);
    }

    @Test
    @DisplayName("calls the loader once and hands back the very object it built on every hit")
    void hitsReturnTheLoadedObject() {
        String source = source();
        CachedPublicKeys built = keys("k1");
        AtomicInteger calls = new AtomicInteger();

        assertNull(NativeBridge.publicKeyCacheGet(source));
        Object reloaded = NativeBridge.publicKeyCacheReload(source, () -> {
            calls.incrementAndGet();
            return built;
        });
        assertSame(built, reloaded);
        assertSame(built, NativeBridge.publicKeyCacheGet(source));
        assertSame(built, NativeBridge.publicKeyCacheGet(source));

        // Within the window a second reload does not call its loader and returns the current keys.
        Object throttled = NativeBridge.publicKeyCacheReload(source, () -> {
            calls.incrementAndGet();
            return keys("k2");
        });
        assertSame(built, throttled);
        assertEquals(1, calls.get());
    }

    @Test
    @DisplayName("lets concurrent reloads of one source share one call of the loader")
    void concurrentReloadsShareOneLoad() throws Exception {
        String source = source();
        int callers = 8;
        long coalescedBefore = counter("coalesced");
        AtomicInteger calls = new AtomicInteger();
        CountDownLatch allStarted = new CountDownLatch(callers);
        CachedPublicKeys built = keys("shared");
        ExecutorService pool = Executors.newFixedThreadPool(callers);
        try {
            List<Future<Object>> answers = new ArrayList<>();
            for (int i = 0; i < callers; i++) {
                answers.add(pool.submit(() -> {
                    allStarted.countDown();
                    allStarted.await();
                    return NativeBridge.publicKeyCacheReload(source, () -> {
                        calls.incrementAndGet();
                        // Hold the load until the other callers have joined it (bounded, so a bug fails, not hangs).
                        long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
                        while (counter("coalesced") < coalescedBefore + callers - 1 && System.nanoTime() < giveUp) {
                            Thread.onSpinWait();
                        }
                        return built;
                    });
                }));
            }
            for (Future<Object> answer : answers) {
                assertSame(built, answer.get(30, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, calls.get());
    }

    private static long counter(String name) throws IOException {
        return JsonSerialization.mapper.readTree(NativeBridge.publicKeyCacheStats()).path(name).asLong();
    }

    @Test
    @DisplayName("turns an exception thrown by the loader into PUBLIC_KEYS_UNAVAILABLE with its class and message")
    void loaderExceptionBecomesPublicKeysUnavailable() {
        String source = source();
        NativeException e = assertThrows(NativeException.class, () -> NativeBridge.publicKeyCacheReload(source, () -> {
            throw new IOException("connect timed out to jwks.example");
        }));
        assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, e.code());
        assertTrue(e.retryable());
        assertTrue(e.detail().contains("java.io.IOException: connect timed out to jwks.example"), e.detail());
        assertTrue(e.detail().contains(source), e.detail());

        // Nothing was left pending: the next native calls work, and the failure counts against the window.
        assertNotNull(NativeBridge.version());
        AtomicInteger calls = new AtomicInteger();
        assertNull(NativeBridge.publicKeyCacheReload(source, () -> {
            calls.incrementAndGet();
            return keys("k");
        }));
        assertEquals(0, calls.get());
    }

    @Test
    @DisplayName("keeps serving the last good keys when a later load throws, and returns them normally")
    void failedReloadServesTheLastGoodKeys() {
        String source = source();
        CachedPublicKeys good = keys("good");
        // No window, so that the second reload really calls its loader.
        NativeBridge.publicKeyCacheConfigure("{\"minTimeBetweenRequestsMillis\":0}");
        try {
            assertSame(good, NativeBridge.publicKeyCacheReload(source, () -> good));
            Object answer = NativeBridge.publicKeyCacheReload(source, () -> {
                throw new IOException("jwks.example is down");
            });
            // The Java exception was caught and cleared: the native returned normally, with the old keys.
            assertSame(good, answer);
            assertSame(good, NativeBridge.publicKeyCacheGet(source));
        } finally {
            NativeBridge.publicKeyCacheConfigure(POLICY);
        }
    }

    @Test
    @DisplayName("reports a loader exception without a message, and a loader returning null, as PUBLIC_KEYS_UNAVAILABLE")
    void otherLoaderFailures() {
        NativeException withoutMessage = assertThrows(NativeException.class,
                () -> NativeBridge.publicKeyCacheReload(source(), () -> {
                    throw new IllegalStateException();
                }));
        assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, withoutMessage.code());
        assertTrue(withoutMessage.detail().contains("java.lang.IllegalStateException"), withoutMessage.detail());

        NativeException returnedNull = assertThrows(NativeException.class,
                () -> NativeBridge.publicKeyCacheReload(source(), () -> null));
        assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, returnedNull.code());
        assertNotNull(NativeBridge.version());
    }

    @Test
    @DisplayName("does not serve keys past the expiry the loader gave as fresh")
    void expiredKeysAreNotFresh() {
        String source = source();
        CachedPublicKeys expired = new CachedPublicKeys(PublicKeysWrapper.EMPTY, System.currentTimeMillis() - 1000);
        assertSame(expired, NativeBridge.publicKeyCacheReload(source, () -> expired));
        assertNull(NativeBridge.publicKeyCacheGet(source));
    }

    @Test
    @DisplayName("forgets a source on evict, a realm's sources on evictPrefix, and everything on clear")
    void evictionsForget() {
        String realm = "bridge-test-" + UUID.randomUUID();
        String client = realm + "::client::" + UUID.randomUUID() + "::keyuse::SIG";
        String idp = realm + "::idp::" + UUID.randomUUID();
        String other = source();
        for (String source : List.of(client, idp, other)) {
            NativeBridge.publicKeyCacheReload(source, () -> keys(source));
        }

        NativeBridge.publicKeyCacheEvict(client);
        assertNull(NativeBridge.publicKeyCacheGet(client));
        assertNotNull(NativeBridge.publicKeyCacheGet(idp));

        NativeBridge.publicKeyCacheEvictPrefix(realm + "::");
        assertNull(NativeBridge.publicKeyCacheGet(idp));
        assertNotNull(NativeBridge.publicKeyCacheGet(other));

        NativeBridge.publicKeyCacheClear();
        assertNull(NativeBridge.publicKeyCacheGet(other));

        // An evicted source loads again at once: its window went with it.
        CachedPublicKeys again = keys("again");
        assertSame(again, NativeBridge.publicKeyCacheReload(client, () -> again));
    }

    @Test
    @DisplayName("reports its counters as JSON")
    void statsAreJson() throws IOException {
        JsonNode stats = JsonSerialization.mapper.readTree(NativeBridge.publicKeyCacheStats());
        for (String counter : List.of("entries", "hits", "misses", "loads", "loadFailures", "throttled", "coalesced",
                "staleServed")) {
            assertTrue(stats.path(counter).canConvertToLong(), counter + " in " + stats);
        }
    }

    @Test
    @DisplayName("refuses settings that are not the documented JSON with INVALID_ARGUMENT and keeps the old ones")
    void badSettingsAreRefused() {
        for (String json : List.of("{not json", "{\"maxEntries\":0}", "{\"unknownSetting\":1}",
                "{\"trustedCertificates\":[\"bm90IGEgY2VydA==\"]}")) {
            NativeException e = assertThrows(NativeException.class, () -> NativeBridge.publicKeyCacheConfigure(json));
            assertEquals(NativeErrorCode.INVALID_ARGUMENT, e.code(), json);
        }
        NativeBridge.publicKeyCacheConfigure(POLICY);
    }

    @Test
    @DisplayName("downloads a JWKS and reports the keys it kept and the ones it skipped")
    void fetchJwksParses() throws IOException {
        String url = "http://127.0.0.1:" + jwksServer.getAddress().getPort() + "/jwks";
        JsonNode document = JsonSerialization.mapper.readTree(NativeBridge.fetchJwks(url, "sig"));
        assertEquals(1, document.path("keys").size(), document.toString());
        JsonNode key = document.path("keys").get(0);
        assertEquals("idp-1", key.path("kid").asText());
        assertEquals("EC", key.path("kty").asText());
        assertEquals("P-256", key.path("crv").asText());
        assertEquals("sig", key.path("use").asText());
        assertTrue(key.path("spki").asText().length() > 0);
        assertEquals("private", document.path("skipped").get(0).path("kid").asText());
    }

    @Test
    @DisplayName("refuses to follow a JWKS redirect with JWKS_FETCH_FAILED")
    void fetchJwksRefusesRedirects() {
        String url = "http://127.0.0.1:" + jwksServer.getAddress().getPort() + "/moved";
        NativeException e = assertThrows(NativeException.class, () -> NativeBridge.fetchJwks(url, "sig"));
        assertEquals(NativeErrorCode.JWKS_FETCH_FAILED, e.code());
        assertTrue(e.detail().contains("301"), e.detail());
        assertEquals(NativeErrorCode.INVALID_ARGUMENT,
                assertThrows(NativeException.class, () -> NativeBridge.fetchJwks(url, "encryption")).code());
    }
}
