package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
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
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

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
 * The public key cache natives from Java, through the real library under -Xcheck:jni: the reload
 * permit protocol (one caller leads, the others wait for its keys; the leader completes or fails its
 * permit; a permit nobody ends expires), hits that return the very object the leader stored, and
 * the JWKS download. Every test uses its own source keys, because the cache is one per process and
 * other test classes use it too.
 */
@DisplayName("The native public key cache bridge")
class PublicKeyCacheBridgeTest {

    /** The documented window and download timeout (which also bounds how long followers wait). */
    private static final String POLICY = "{\"minTimeBetweenRequests\":10,\"fetchTimeout\":5000}";

    private static HttpServer jwksServer;

    @BeforeAll
    static void configureAndStartServer() throws IOException {
        Native.configurePublicKeyCache(POLICY);
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

    /** Leads a reload of {@code source} and completes it with {@code keys}. */
    private static CachedPublicKeys load(String source, CachedPublicKeys keys) {
        ReloadStart start = Native.beginPublicKeyReload(source);
        assertTrue(start.leads(), "expected to lead the reload of " + source + ", got " + start);
        return Native.completePublicKeyReload(start.permit(), keys);
    }

    private static long counter(String name) throws IOException {
        return JsonSerialization.mapper.readTree(Native.publicKeyCacheStats()).path(name).asLong();
    }

    /** Waits, bounded so that a bug fails instead of hanging, until {@code waiting} callers have joined a load. */
    private static void awaitCoalesced(long before, int waiting) throws IOException {
        long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
        while (counter("coalesced") < before + waiting && System.nanoTime() < giveUp) {
            Thread.onSpinWait();
        }
    }

    /** Runs {@code callers} reloads of {@code source} on threads of {@code pool}. */
    private static List<Future<ReloadStart>> reloadsOn(ExecutorService pool, String source, int callers) {
        List<Future<ReloadStart>> starts = new ArrayList<>();
        for (int i = 0; i < callers; i++) {
            starts.add(pool.submit(() -> Native.beginPublicKeyReload(source)));
        }
        return starts;
    }

    @Test
    @DisplayName("gives the first reload a permit and hands back the very object it completed with on every hit")
    void leaderCompletesAndHitsReturnItsObject() {
        String source = source();
        assertNull(Native.cachedPublicKeys(source));

        ReloadStart start = Native.beginPublicKeyReload(source);
        assertTrue(start.leads());
        assertNull(start.answer());
        CachedPublicKeys built = keys("k1");
        assertSame(built, Native.completePublicKeyReload(start.permit(), built));
        assertSame(built, Native.cachedPublicKeys(source));
        assertSame(built, Native.cachedPublicKeys(source));

        // Within the window a second reload does not lead and answers with the current keys.
        ReloadStart throttled = Native.beginPublicKeyReload(source);
        assertFalse(throttled.leads());
        assertSame(built, throttled.answer());
    }

    @Test
    @DisplayName("makes concurrent reloads of one source wait for the leader and share its keys")
    void followersWaitForTheLeader() throws Exception {
        String source = source();
        int followers = 8;
        long coalescedBefore = counter("coalesced");
        ReloadStart leader = Native.beginPublicKeyReload(source);
        assertTrue(leader.leads());
        CachedPublicKeys built = keys("shared");
        ExecutorService pool = Executors.newFixedThreadPool(followers);
        try {
            List<Future<ReloadStart>> starts = reloadsOn(pool, source, followers);
            awaitCoalesced(coalescedBefore, followers);
            for (Future<ReloadStart> start : starts) {
                assertFalse(start.isDone(), "a follower returned before the leader ended its permit");
            }
            assertSame(built, Native.completePublicKeyReload(leader.permit(), built));
            for (Future<ReloadStart> start : starts) {
                ReloadStart answer = start.get(30, TimeUnit.SECONDS);
                assertFalse(answer.leads());
                assertSame(built, answer.answer());
            }
        } finally {
            pool.shutdownNow();
        }
        assertTrue(counter("coalesced") >= coalescedBefore + followers, "the followers joined the leader's load");
    }

    @Test
    @DisplayName("fails a load: leader and followers get PUBLIC_KEYS_UNAVAILABLE with the reason while nothing is cached")
    void failedLoadWithNothingCachedIsUnavailable() throws Exception {
        String source = source();
        long coalescedBefore = counter("coalesced");
        ReloadStart leader = Native.beginPublicKeyReload(source);
        assertTrue(leader.leads());
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<ReloadStart> follower = reloadsOn(pool, source, 1).get(0);
            awaitCoalesced(coalescedBefore, 1);

            NativeException e = assertThrows(NativeException.class, () -> Native.failPublicKeyReload(leader.permit(),
                    "java.io.IOException: connect timed out to jwks.example"));
            assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, e.code());
            assertTrue(e.retryable());
            assertTrue(e.detail().contains("java.io.IOException: connect timed out to jwks.example"), e.detail());
            assertTrue(e.detail().contains(source), e.detail());

            ExecutionException followed = assertThrows(ExecutionException.class, () -> follower.get(30, TimeUnit.SECONDS));
            NativeException cause = assertInstanceOf(NativeException.class, followed.getCause());
            assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, cause.code());
        } finally {
            pool.shutdownNow();
        }

        // The failure counts against the window: the next reload neither leads nor has keys.
        ReloadStart next = Native.beginPublicKeyReload(source);
        assertFalse(next.leads());
        assertNull(next.answer());
    }

    @Test
    @DisplayName("answers a failed load with the last good keys")
    void failedLoadServesTheLastGoodKeys() {
        String source = source();
        CachedPublicKeys good = keys("good");
        // No window, so that the second reload leads again.
        Native.configurePublicKeyCache("{\"minTimeBetweenRequests\":0}");
        try {
            assertSame(good, load(source, good));
            ReloadStart again = Native.beginPublicKeyReload(source);
            assertTrue(again.leads());
            assertSame(good, Native.failPublicKeyReload(again.permit(), "java.io.IOException: jwks.example is down"));
            assertSame(good, Native.cachedPublicKeys(source));
        } finally {
            Native.configurePublicKeyCache(POLICY);
        }
    }

    @Test
    @DisplayName("refuses to complete a permit without keys with INVALID_ARGUMENT, and counts it as a failed load")
    void completingWithoutKeysIsRefused() {
        String source = source();
        ReloadStart start = Native.beginPublicKeyReload(source);
        assertTrue(start.leads());
        NativeException e = assertThrows(NativeException.class, () -> Native.completePublicKeyReload(start.permit(), null));
        assertEquals(NativeErrorCode.INVALID_ARGUMENT, e.code());
        assertNotNull(Native.version());
        ReloadStart next = Native.beginPublicKeyReload(source);
        assertFalse(next.leads(), "the failed permit counts against the window");
        assertNull(next.answer());
    }

    @Test
    @DisplayName("lets a permit nobody ends expire after the fetch timeout: followers are released and a later reload leads")
    void unendedPermitExpires() throws Exception {
        String source = source();
        Native.configurePublicKeyCache("{\"minTimeBetweenRequests\":0,\"fetchTimeout\":300}");
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            ReloadStart abandoned = Native.beginPublicKeyReload(source);
            assertTrue(abandoned.leads());

            long started = System.nanoTime();
            Future<ReloadStart> follower = reloadsOn(pool, source, 1).get(0);
            ExecutionException released = assertThrows(ExecutionException.class, () -> follower.get(30, TimeUnit.SECONDS));
            assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE,
                    assertInstanceOf(NativeException.class, released.getCause()).code());
            assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(5), "released by the fetch timeout");

            ReloadStart next = Native.beginPublicKeyReload(source);
            assertTrue(next.leads(), "after the window a reload leads again");
            assertNotEquals(abandoned.permit(), next.permit());

            // The expired permit's keys are handed back but not stored.
            CachedPublicKeys late = keys("late");
            assertSame(late, Native.completePublicKeyReload(abandoned.permit(), late));
            assertNull(Native.cachedPublicKeys(source));

            CachedPublicKeys fresh = keys("fresh");
            assertSame(fresh, Native.completePublicKeyReload(next.permit(), fresh));
            assertSame(fresh, Native.cachedPublicKeys(source));
        } finally {
            pool.shutdownNow();
            Native.configurePublicKeyCache(POLICY);
        }
    }

    @Test
    @DisplayName("does not serve keys past the expiry the leader gave as fresh")
    void expiredKeysAreNotFresh() {
        String source = source();
        CachedPublicKeys expired = new CachedPublicKeys(PublicKeysWrapper.EMPTY, System.currentTimeMillis() - 1000);
        assertSame(expired, load(source, expired));
        assertNull(Native.cachedPublicKeys(source));
    }

    @Test
    @DisplayName("forgets a source on evict, a realm's sources on evict by prefix, and everything on clear")
    void evictionsForget() {
        String realm = "bridge-test-" + UUID.randomUUID();
        String client = realm + "::client::" + UUID.randomUUID() + "::keyuse::SIG";
        String idp = realm + "::idp::" + UUID.randomUUID();
        String other = source();
        for (String source : List.of(client, idp, other)) {
            load(source, keys(source));
        }

        Native.evictPublicKeys(client);
        assertNull(Native.cachedPublicKeys(client));
        assertNotNull(Native.cachedPublicKeys(idp));

        Native.evictPublicKeysByPrefix(realm + "::");
        assertNull(Native.cachedPublicKeys(idp));
        assertNotNull(Native.cachedPublicKeys(other));

        Native.clearPublicKeys();
        assertNull(Native.cachedPublicKeys(other));

        // An evicted source loads again at once: its window went with it.
        CachedPublicKeys again = keys("again");
        assertSame(again, load(client, again));
    }

    @Test
    @DisplayName("hands out a source id with the answers by key, serves hits by it, and lets an evicted source's id name nothing")
    void sourceIdsNameOneSourceWhileItIsCached() {
        String source = source();
        long[] permitAndId = new long[2];
        assertNull(NativeBridge.publicKeyCacheReload(source, permitAndId));
        assertNotEquals(0L, permitAndId[0], "the first reload leads");
        long id = permitAndId[1];
        assertNotEquals(0L, id, "the reload caches the source and names its id");
        assertNull(NativeBridge.publicKeyCacheGetById(id), "nothing loaded yet");
        CachedPublicKeys built = keys("by-id");
        assertSame(built, Native.completePublicKeyReload(permitAndId[0], built));
        assertSame(built, NativeBridge.publicKeyCacheGetById(id));
        long[] sourceId = new long[1];
        assertSame(built, NativeBridge.publicKeyCacheGet(source, sourceId));
        assertEquals(id, sourceId[0]);

        long[] again = new long[2];
        assertSame(built, NativeBridge.publicKeyCacheReloadById(id, again), "throttled: the current keys");
        assertArrayEquals(new long[] {0L, id}, again);

        NativeBridge.publicKeyCacheEvict(source);
        assertNull(NativeBridge.publicKeyCacheGetById(id));
        long[] unknown = {-1L, -1L};
        assertNull(NativeBridge.publicKeyCacheReloadById(id, unknown));
        assertArrayEquals(new long[] {0L, 0L}, unknown, "an evicted source's id is answered as unknown");
        // Cached again, the source gets another id; the old one still names nothing.
        assertNull(NativeBridge.publicKeyCacheReload(source, permitAndId));
        assertNotEquals(id, permitAndId[1]);
        Native.completePublicKeyReload(permitAndId[0], keys("again"));
        assertNull(NativeBridge.publicKeyCacheGetById(id));
        Native.evictPublicKeys(source);
    }

    @Test
    @DisplayName("asks by key again when the id it remembered names no cached source any more")
    void aStaleRememberedIdFallsBackToTheKey() {
        String source = source();
        CachedPublicKeys first = keys("first");
        assertSame(first, load(source, first));
        long remembered = SourceIds.get(source);
        assertNotEquals(0L, remembered, "the facade remembers the id of a source it loaded");
        assertSame(first, Native.cachedPublicKeys(source));

        // Evicted behind the facade's back (as the LRU bound or max idle would): the id goes stale.
        NativeBridge.publicKeyCacheEvict(source);
        assertEquals(remembered, SourceIds.get(source));
        assertNull(Native.cachedPublicKeys(source), "a stale id is a miss, never another source's keys");
        CachedPublicKeys second = keys("second");
        assertSame(second, load(source, second));
        long renewed = SourceIds.get(source);
        assertNotEquals(0L, renewed);
        assertNotEquals(remembered, renewed, "the reload by key learned the source's new id");
        assertSame(second, Native.cachedPublicKeys(source));

        Native.evictPublicKeys(source);
        assertEquals(0L, SourceIds.get(source), "an eviction forgets the id");
    }

    @Test
    @DisplayName("keeps at most its bound of source ids, starting over past it")
    void rememberedIdsAreBounded() {
        String prefix = "bridge-test-" + UUID.randomUUID() + "::bound::";
        for (int i = 0; i <= SourceIds.MAX_IDS; i++) {
            SourceIds.remember(prefix + i, i + 1L);
        }
        assertTrue(SourceIds.size() <= SourceIds.MAX_IDS, "remembered " + SourceIds.size());
        SourceIds.forgetPrefix(prefix);
        assertEquals(0L, SourceIds.get(prefix + SourceIds.MAX_IDS));
    }

    @Test
    @DisplayName("reports its counters as JSON")
    void statsAreJson() throws IOException {
        JsonNode stats = JsonSerialization.mapper.readTree(Native.publicKeyCacheStats());
        for (String counter : List.of("entries", "hits", "misses", "loads", "loadFailures", "throttled", "coalesced",
                "staleServed")) {
            assertTrue(stats.path(counter).canConvertToLong(), counter + " in " + stats);
        }
    }

    @Test
    @DisplayName("reports its defaults under the option names, as numbers")
    void defaultsAreJson() throws IOException {
        JsonNode defaults = JsonSerialization.mapper.readTree(Native.publicKeyCacheDefaults());
        for (String option : List.of("minTimeBetweenRequests", "maxEntries", "maxIdle", "maxAge", "staleOnErrorLimit",
                "fetchConnectTimeout", "fetchTimeout", "maxResponseSize")) {
            assertTrue(defaults.path(option).canConvertToLong(), option + " in " + defaults);
        }
    }

    @Test
    @DisplayName("refuses options that are not the documented JSON with INVALID_ARGUMENT naming the option")
    void badOptionsAreRefused() {
        try {
            for (String json : List.of("{not json", "{\"maxEntries\":0}", "{\"unknownSetting\":1}",
                    "{\"trustedCertificates\":[\"bm90IGEgY2VydA==\"]}")) {
                NativeException e = assertThrows(NativeException.class, () -> Native.configurePublicKeyCache(json));
                assertEquals(NativeErrorCode.INVALID_ARGUMENT, e.code(), json);
            }
            NativeException zero = assertThrows(NativeException.class,
                    () -> Native.configurePublicKeyCache("{\"maxEntries\":0}"));
            assertTrue(zero.detail().contains("maxEntries"), zero.detail());
        } finally {
            Native.configurePublicKeyCache(POLICY);
        }
    }

    @Test
    @DisplayName("downloads a JWKS and reports the keys it kept and the ones it skipped")
    void fetchJwksParses() throws IOException {
        String url = "http://127.0.0.1:" + jwksServer.getAddress().getPort() + "/jwks";
        JsonNode document = JsonSerialization.mapper.readTree(Native.fetchJwks(url, "sig"));
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
        NativeException e = assertThrows(NativeException.class, () -> Native.fetchJwks(url, "sig"));
        assertEquals(NativeErrorCode.JWKS_FETCH_FAILED, e.code());
        assertTrue(e.detail().contains("301"), e.detail());
        assertEquals(NativeErrorCode.INVALID_ARGUMENT,
                assertThrows(NativeException.class, () -> Native.fetchJwks(url, "encryption")).code());
    }
}
