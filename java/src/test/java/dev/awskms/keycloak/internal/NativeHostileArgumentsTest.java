package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.util.JsonSerialization;

import com.sun.net.httpserver.HttpServer;

/**
 * Every native of {@link NativeBridge} with hostile arguments — null, empty, 10 MB, lone UTF-16
 * surrogates, NUL and control characters, malformed and deeply nested JSON, zero/negative/garbage
 * handles and permits — through the {@link Native} facade, and through the bridge directly where
 * the facade would stop the argument first. Each call must end in a {@link NativeException} with
 * the documented code (or, where any value is legal, a normal return), with a message that does
 * not echo the 10 MB back; the JVM (under -Xcheck:jni) survives, and a good call afterwards
 * shows the library still works. Shared state is left as the defaults or as it was.
 */
@DisplayName("Every native entry with hostile arguments")
class NativeHostileArgumentsTest {

    /** Bigger than any legitimate argument by far. */
    private static final String TEN_MB = "a".repeat(10 * 1024 * 1024);
    /** A message may quote an argument, but only so much of it. */
    private static final int MAX_MESSAGE_CHARS = 2_000;

    /** Strings no native should take for a configuration, a key, a name or an id. */
    private static final List<String> HOSTILE_STRINGS = hostileStrings();

    private static final String KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    private static String goodStoredConfig;
    private static HttpServer jwksServer;

    private static List<String> hostileStrings() {
        List<String> values = new ArrayList<>();
        values.add("");
        values.add(" \t\r\n");
        values.add("\u0000");
        values.add("\uD800");
        values.add("x\uDC00y");
        values.add("\uDBFF\uDFFF\u202E\u200B\uFEFF");
        values.add("{not json");
        values.add("{\"kmsKeyId\":\"\uD800\",\"region\":\"\u0000\"}");
        values.add("[]");
        values.add("null");
        values.add("\"a string\"");
        values.add("{\"a\":");
        values.add("[".repeat(100_000));
        values.add("{\"a\":".repeat(10_000));
        values.add(TEN_MB);
        values.add("{\"kmsKeyId\":\"" + TEN_MB + "\",\"region\":\"us-east-1\"}");
        values.add("${vault.nothing}");
        return Collections.unmodifiableList(values);
    }

    /** A short label for a hostile value, for assertion messages. */
    private static String label(Object value) {
        if (value == null) {
            return "null";
        }
        String text = String.valueOf(value);
        return text.length() <= 40 ? text : text.substring(0, 40) + "… (" + text.length() + " chars)";
    }

    @BeforeAll
    static void setUp() throws Exception {
        Native.ensureLoaded();
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        String publicKey = Base64.getEncoder().encodeToString(generator.generateKeyPair().getPublic().getEncoded());
        Map<String, String> config = new LinkedHashMap<>();
        config.put("kmsKeyId", KEY_ARN);
        config.put("region", "us-east-1");
        // Nothing listens there: a signature fails fast with NETWORK, no AWS is reached.
        config.put("endpointUrl", "http://127.0.0.1:9");
        config.put("credentialsMode", "access-key");
        config.put("accessKeyId", "AKIAHOSTILETEST00001");
        config.put("secretAccessKey", "hostile-test-secret");
        config.put("algorithm", "ES256");
        config.put("keyArn", KEY_ARN);
        config.put("keySpec", "ECC_NIST_P256");
        config.put("publicKey", publicKey);
        goodStoredConfig = JsonSerialization.writeValueAsString(config);

        jwksServer = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        jwksServer.createContext("/jwks", exchange -> {
            byte[] body = ("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"hostile-1\",\"use\":\"sig\","
                    + "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                    + "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        jwksServer.start();
    }

    @AfterAll
    static void tearDown() {
        if (jwksServer != null) {
            jwksServer.stop(0);
        }
        // The options every other test class starts from.
        Native.configurePublicKeyCache("{}");
        Native.configureSigningPolicy("{}");
    }

    /** Runs a hostile call: it must throw a NativeException whose code is one of {@code codes}. */
    private static NativeException refused(String what, Object argument, Set<NativeErrorCode> codes, Runnable call) {
        NativeException e = assertThrows(NativeException.class, call::run, what + "(" + label(argument) + ")");
        assertTrue(codes.contains(e.code()), what + "(" + label(argument) + "): " + e.code() + " " + label(e.getMessage()));
        assertNotNull(e.getMessage());
        assertTrue(e.getMessage().length() <= MAX_MESSAGE_CHARS,
                what + "(" + label(argument) + ") answers with a message of " + e.getMessage().length() + " characters");
        return e;
    }

    /** Runs a call for which any value is legal: a normal return, or a NativeException of {@code codes}. */
    private static void survived(String what, Object argument, Set<NativeErrorCode> codes, Runnable call) {
        try {
            call.run();
        } catch (NativeException e) {
            assertTrue(codes.contains(e.code()), what + "(" + label(argument) + "): " + e.code());
            assertTrue(e.getMessage().length() <= MAX_MESSAGE_CHARS, what + "(" + label(argument) + ") message length");
        } catch (RuntimeException | Error e) {
            fail(what + "(" + label(argument) + ") threw " + e, e);
        }
    }

    /** A good call of the signing natives: the library still registers, signs (to nowhere) and releases. */
    private static void signingStillWorks() {
        String component = "hostile-" + UUID.randomUUID();
        long handle = Native.signingKeyHandle(component, goodStoredConfig);
        assertTrue(handle > 0, "a handle");
        NativeException e = assertThrows(NativeException.class,
                () -> Native.sign(handle, "SHA256withECDSA", new byte[] {1, 2, 3}));
        assertTrue(EnumSet.of(NativeErrorCode.NETWORK, NativeErrorCode.TIMEOUT).contains(e.code()), e.code().toString());
        Native.releaseSigningKey(component);
        assertTrue(Native.signingKeyStats().startsWith("{"));
    }

    @Test
    @DisplayName("configureSigningPolicy refuses null, empty, 10 MB and malformed options with INVALID_ARGUMENT")
    void signingPolicyOptions() {
        List<String> values = new ArrayList<>(HOSTILE_STRINGS);
        values.add(null);
        values.add("{\"allowedKeyIds\":\"" + TEN_MB + "\",\"unknown\":1}");
        values.add("{\"allowedCredentialsModes\":\"\u0000default\"}");
        values.add("{\"keySharedAcrossRealms\":\"\uD800\"}");
        values.add("{\"allowedEndpointHosts\":[\"a\"]}");
        for (String value : values) {
            refused("configureSigningPolicy", value, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.configureSigningPolicy(value));
        }
        Native.configureSigningPolicy("{}");
        signingStillWorks();
    }

    @Test
    @DisplayName("describeSigningKey refuses hostile configurations before any KMS call")
    void describeSigningKey() {
        List<String> values = new ArrayList<>(HOSTILE_STRINGS);
        values.add(null);
        values.add("{\"kmsKeyId\":\"alias/a\",\"region\":\"" + TEN_MB + "\"}");
        values.add("{\"kmsKeyId\":\"alias/a\u0000\",\"region\":\"us-east-1\"}");
        values.add("{\"kmsKeyId\":\"alias/a\",\"region\":\"us-east-1\",\"endpointUrl\":\"http://\u202E127.0.0.1\"}");
        values.add("{\"kmsKeyId\":\"alias/a\",\"region\":\"us-east-1\",\"credentialsMode\":\"assume-role\","
                + "\"roleArn\":\"" + TEN_MB + "\"}");
        values.add("{\"kmsKeyId\":\"alias/a\",\"region\":\"us-east-1\",\"keptSecrets\":\"not an array\"}");
        values.add("{\"kmsKeyId\":\"alias/a\",\"region\":\"us-east-1\",\"algorithm\":\"\uD800\"}");
        long started = System.nanoTime();
        for (String value : values) {
            refused("describeSigningKey", value,
                    EnumSet.of(NativeErrorCode.INVALID_ARGUMENT, NativeErrorCode.INVALID_CONFIGURATION),
                    () -> Native.describeSigningKey(value));
        }
        // Refused on the fields: no call waited for an endpoint.
        assertTrue(System.nanoTime() - started < 20_000_000_000L, "hostile configurations took long");
        signingStillWorks();
    }

    @Test
    @DisplayName("signingKeyHandle refuses hostile component ids and configurations")
    void signingKeyHandle() {
        for (String componentId : List.of("", " ", "\t\n")) {
            refused("signingKeyHandle", componentId, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.signingKeyHandle(componentId, goodStoredConfig));
        }
        refused("signingKeyHandle", null, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                () -> Native.signingKeyHandle(null, goodStoredConfig));
        List<String> configs = new ArrayList<>(HOSTILE_STRINGS);
        configs.add(null);
        configs.add(goodStoredConfig.replace("\"publicKey\":\"", "\"publicKey\":\"\u0000"));
        configs.add(goodStoredConfig.replace("\"keySpec\":\"ECC_NIST_P256\"", "\"keySpec\":\"" + TEN_MB + "\""));
        configs.add(goodStoredConfig.replace("\"publicKey\":\"", "\"publicKey\":\"" + TEN_MB));
        for (String config : configs) {
            refused("signingKeyHandle", config,
                    EnumSet.of(NativeErrorCode.INVALID_ARGUMENT, NativeErrorCode.INVALID_CONFIGURATION),
                    () -> Native.signingKeyHandle("hostile-" + UUID.randomUUID(), config));
        }
        // Hostile but legal component ids: a key is registered under them and released again.
        for (String componentId : List.of("\u0000", "\uD800", "x\uDC00y", "\u202E" + "id", TEN_MB)) {
            long handle = Native.signingKeyHandle(componentId, goodStoredConfig);
            assertTrue(handle > 0, label(componentId));
            Native.releaseSigningKey(componentId);
        }
        signingStillWorks();
    }

    @Test
    @DisplayName("sign refuses garbage handles, algorithms and messages, and signs a 10 MB message only by its digest")
    void sign() {
        for (long handle : new long[] {0L, -1L, Long.MIN_VALUE, Long.MAX_VALUE, 0x7FFF_FFFF_0000_0001L}) {
            refused("sign", handle, EnumSet.of(NativeErrorCode.INVALID_HANDLE),
                    () -> Native.sign(handle, "SHA256withECDSA", new byte[] {1}));
            refused("sign", handle, EnumSet.of(NativeErrorCode.INVALID_HANDLE, NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.sign(handle, null, null));
        }
        String component = "hostile-" + UUID.randomUUID();
        long handle = Native.signingKeyHandle(component, goodStoredConfig);
        try {
            List<String> algorithms = new ArrayList<>(HOSTILE_STRINGS);
            algorithms.add(null);
            algorithms.add("SHA256withRSA");
            algorithms.add("SHA256withECDSA\u0000");
            for (String algorithm : algorithms) {
                refused("sign", algorithm,
                        EnumSet.of(NativeErrorCode.INVALID_ARGUMENT, NativeErrorCode.KEY_SPEC_MISMATCH),
                        () -> Native.sign(handle, algorithm, new byte[] {1}));
            }
            refused("sign", "null message", EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.sign(handle, "SHA256withECDSA", null));
            // Empty and 10 MB messages are legal: hashed here, so KMS (nowhere) is asked either way.
            for (byte[] message : new byte[][] {new byte[0], new byte[10 * 1024 * 1024]}) {
                refused("sign", message.length + " bytes", EnumSet.of(NativeErrorCode.NETWORK, NativeErrorCode.TIMEOUT),
                        () -> Native.sign(handle, "SHA256withECDSA", message));
            }
        } finally {
            Native.releaseSigningKey(component);
        }
        refused("sign", "released handle", EnumSet.of(NativeErrorCode.INVALID_HANDLE),
                () -> Native.sign(handle, "SHA256withECDSA", new byte[] {1}));
        signingStillWorks();
    }

    @Test
    @DisplayName("releaseSigningKey takes any id (unknown ids are a no-op) and refuses null")
    void releaseSigningKey() {
        for (String value : HOSTILE_STRINGS) {
            survived("releaseSigningKey", value, EnumSet.noneOf(NativeErrorCode.class),
                    () -> Native.releaseSigningKey(value));
        }
        refused("releaseSigningKey", null, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                () -> Native.releaseSigningKey(null));
        signingStillWorks();
    }

    @Test
    @DisplayName("publicKeyCacheConfigure refuses null, empty, 10 MB and malformed options with INVALID_ARGUMENT")
    void publicKeyCacheOptions() {
        List<String> values = new ArrayList<>(HOSTILE_STRINGS);
        values.add(null);
        values.add("{\"maxEntries\":-1}");
        values.add("{\"maxEntries\":1e400}");
        values.add("{\"maxEntries\":18446744073709551616}");
        values.add("{\"fetchTimeout\":\"\uD800\"}");
        values.add("{\"deniedAddresses\":\"" + TEN_MB + "\"}");
        values.add("{\"deniedAddresses\":\"10.0.0.0/8,\u0000\"}");
        values.add("{\"trustedCertificates\":[\"" + TEN_MB + "\"]}");
        values.add("{\"trustedCertificates\":[\"MAA=\",null]}");
        values.add("{\"trustedCertificates\":\"MAA=\"}");
        for (String value : values) {
            refused("publicKeyCacheConfigure", value, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.configurePublicKeyCache(value));
        }
        Native.configurePublicKeyCache("{}");
        assertTrue(Native.publicKeyCacheDefaults().startsWith("{"));
        assertTrue(Native.publicKeyCacheStats().startsWith("{"));
    }

    @Test
    @DisplayName("the public key cache takes any source key, refuses null, and stays usable")
    void publicKeyCacheSourceKeys() {
        Set<NativeErrorCode> none = EnumSet.noneOf(NativeErrorCode.class);
        for (String value : HOSTILE_STRINGS) {
            survived("publicKeyCacheGet", value, none, () -> assertNull(Native.cachedPublicKeys(value)));
            survived("publicKeyCacheEvict", value, none, () -> Native.evictPublicKeys(value));
            if (!value.isEmpty()) {
                // (The empty prefix is every source: it is the same as clear.)
                survived("publicKeyCacheEvictPrefix", value, none, () -> Native.evictPublicKeysByPrefix(value));
            }
        }
        Set<NativeErrorCode> invalid = EnumSet.of(NativeErrorCode.INVALID_ARGUMENT);
        // The facade keeps a Java map of source ids (null keys are Java's business there): the
        // natives themselves are asked with null.
        refused("publicKeyCacheGet", null, invalid, () -> NativeBridge.publicKeyCacheGet(null, new long[1]));
        refused("publicKeyCacheEvict", null, invalid, () -> Native.evictPublicKeys(null));
        refused("publicKeyCacheEvictPrefix", null, invalid, () -> Native.evictPublicKeysByPrefix(null));
        refused("publicKeyCacheReload", null, invalid, () -> NativeBridge.publicKeyCacheReload(null, new long[2]));

        // Hostile source keys can be loaded like any other: the permit protocol works for them.
        for (String value : List.of("\u0000", "\uD800", "x\uDC00y", TEN_MB, "hostile-" + UUID.randomUUID() + "\u202E")) {
            ReloadStart start = Native.beginPublicKeyReload(value);
            assertNull(start.answer(), label(value));
            assertNotEquals(0L, start.permit(), label(value));
            CachedPublicKeys keys = keys("hostile");
            assertTrue(keys == Native.completePublicKeyReload(start.permit(), keys), label(value));
            assertTrue(keys == Native.cachedPublicKeys(value), label(value));
            Native.evictPublicKeys(value);
            assertNull(Native.cachedPublicKeys(value), label(value));
        }
        Native.publicKeyCacheDefaults();
        Native.clearPublicKeys();
        assertTrue(Native.publicKeyCacheStats().startsWith("{"));
    }

    /** Fails a permit this test leads; with nothing cached that answers PUBLIC_KEYS_UNAVAILABLE (documented). */
    private static void endPermit(long permit) {
        NativeException e = assertThrows(NativeException.class, () -> Native.failPublicKeyReload(permit, "test"));
        assertEquals(NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE, e.code());
    }

    private static CachedPublicKeys keys(String kid) {
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        return new CachedPublicKeys(new PublicKeysWrapper(List.of(key)), 0L);
    }

    @Test
    @DisplayName("publicKeyCacheReload refuses a null or empty permit array without leaving a permit behind")
    void reloadPermitArrays() {
        String source = "hostile-" + UUID.randomUUID() + "::idp";
        for (long[] permit : new long[][] {null, new long[0]}) {
            RuntimeException e = assertThrows(RuntimeException.class, () -> NativeBridge.publicKeyCacheReload(source, permit),
                    permit == null ? "null" : "long[0]");
            assertTrue(e instanceof NativeException, e.toString());
            // Both are the caller's mistake, refused before anything is asked.
            assertEquals(NativeErrorCode.INVALID_ARGUMENT, ((NativeException) e).code(), e.getMessage());
        }
        // No permit was handed out: the source may lead at once.
        ReloadStart start = Native.beginPublicKeyReload(source);
        assertNotEquals(0L, start.permit());
        endPermit(start.permit());
        // A longer array is fine: the permit is in its first element, the rest beyond the
        // protocol's is left alone.
        String other = "hostile-" + UUID.randomUUID() + "::idp";
        long[] permit = new long[] {-5L, 7L, 9L, 11L};
        assertNull(NativeBridge.publicKeyCacheReload(other, permit));
        assertNotEquals(0L, permit[0]);
        assertEquals(11L, permit[3]);
        endPermit(permit[0]);
    }

    @Test
    @DisplayName("completing or failing a garbage permit fails cleanly, with a bounded reason")
    void garbagePermits() {
        long[] garbage = {0L, -1L, Long.MIN_VALUE, Long.MAX_VALUE, 42L, 0x0123_4567_89AB_CDEFL};
        Set<NativeErrorCode> codes = EnumSet.of(NativeErrorCode.INVALID_HANDLE, NativeErrorCode.INVALID_ARGUMENT,
                NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE);
        for (long permit : garbage) {
            survived("publicKeyCacheCompleteReload", permit, codes,
                    () -> Native.completePublicKeyReload(permit, keys("garbage")));
            refused("publicKeyCacheCompleteReload", permit, codes, () -> Native.completePublicKeyReload(permit, null));
            survived("publicKeyCacheCompleteReload", permit, codes,
                    () -> NativeBridge.publicKeyCacheCompleteReload(permit, keys("garbage"), Long.MIN_VALUE));
            for (String reason : List.of("", "\u0000", "\uD800", TEN_MB)) {
                refused("publicKeyCacheFailReload", permit, codes, () -> Native.failPublicKeyReload(permit, reason));
            }
            refused("publicKeyCacheFailReload", permit, codes, () -> Native.failPublicKeyReload(permit, null));
        }
        // A live permit with hostile arguments: the wrong object type, a null reason, a huge reason.
        String source = "hostile-" + UUID.randomUUID() + "::idp";
        ReloadStart start = Native.beginPublicKeyReload(source);
        // (refused() holds the message to MAX_MESSAGE_CHARS: the 10 MB reason is cut.)
        refused("publicKeyCacheFailReload", TEN_MB, codes, () -> Native.failPublicKeyReload(start.permit(), TEN_MB));
        ReloadStart again = Native.beginPublicKeyReload(source + "-2");
        assertThrows(RuntimeException.class,
                () -> NativeBridge.publicKeyCacheCompleteReload(again.permit(), null, -1L));
        ReloadStart third = Native.beginPublicKeyReload(source + "-3");
        CachedPublicKeys keys = keys("expired-long-ago");
        survived("publicKeyCacheCompleteReload", "expiry Long.MIN_VALUE", codes,
                () -> NativeBridge.publicKeyCacheCompleteReload(third.permit(), keys, Long.MIN_VALUE));
        Native.evictPublicKeys(source + "-3");
        assertTrue(Native.publicKeyCacheStats().startsWith("{"));
    }

    @Test
    @DisplayName("fetchJwks refuses hostile URLs and uses without reaching the network, then still downloads")
    void fetchJwks() throws IOException {
        List<String> urls = new ArrayList<>(HOSTILE_STRINGS);
        urls.add(null);
        urls.add("http://[::1");
        urls.add("file:///etc/passwd");
        urls.add("ftp://127.0.0.1/jwks");
        urls.add("http://127.0.0.1:99999/jwks");
        urls.add("http://\u0000/jwks");
        urls.add("http://" + "a".repeat(100_000) + ".example/jwks");
        urls.add("http://user:pa\u0000ss@127.0.0.1:9/jwks");
        // (A host name no resolver knows fails as NETWORK, like any unreachable host.)
        Set<NativeErrorCode> codes = EnumSet.of(NativeErrorCode.INVALID_ARGUMENT, NativeErrorCode.JWKS_FETCH_FAILED,
                NativeErrorCode.NETWORK);
        for (String url : urls) {
            refused("fetchJwks", url, codes, () -> Native.fetchJwks(url, "sig"));
        }
        String good = "http://127.0.0.1:" + jwksServer.getAddress().getPort() + "/jwks";
        List<String> uses = new ArrayList<>(HOSTILE_STRINGS);
        uses.add(null);
        uses.add("SIG");
        uses.add("sig\u0000");
        for (String use : uses) {
            refused("fetchJwks", use, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT), () -> Native.fetchJwks(good, use));
        }
        String answer = Native.fetchJwks(good, "sig");
        assertEquals("hostile-1", JsonSerialization.mapper.readTree(answer).path("keys").path(0).path("kid").asText());
    }

    @Test
    @DisplayName("the source-id, log and telemetry natives take garbage ids, arrays, waits and JSON cleanly")
    void sourceIdLogAndTelemetryNatives() {
        Set<NativeErrorCode> refusals = EnumSet.of(NativeErrorCode.INVALID_ARGUMENT, NativeErrorCode.INVALID_HANDLE,
                NativeErrorCode.INTERNAL);
        // A missing or empty out array is the caller's mistake: INVALID_ARGUMENT, never INTERNAL, for a
        // known id (the lock-free path) as for an unknown one.
        Set<NativeErrorCode> invalid = EnumSet.of(NativeErrorCode.INVALID_ARGUMENT);
        String known = "hostile-" + UUID.randomUUID() + "::idp";
        ReloadStart lead = Native.beginPublicKeyReload(known);
        Native.completePublicKeyReload(lead.permit(), keys("known"));
        long[] knownId = new long[2];
        // Throttled (inside the window): the keys, and the source's id in knownId[1].
        assertNotNull(NativeBridge.publicKeyCacheReload(known, knownId));
        assertNotEquals(0L, knownId[1]);
        for (long[] array : new long[][] {null, new long[0]}) {
            String what = array == null ? "null array" : "long[0]";
            refused("publicKeyCacheGet", what, invalid, () -> NativeBridge.publicKeyCacheGet("hostile::get", array));
            refused("publicKeyCacheReloadById", what, invalid, () -> NativeBridge.publicKeyCacheReloadById(1L, array));
            refused("publicKeyCacheReloadById", what, invalid,
                    () -> NativeBridge.publicKeyCacheReloadById(knownId[1], array));
        }
        // A one-element array takes the permit only, for a known id too.
        long[] permitOnly = {42L};
        assertNotNull(NativeBridge.publicKeyCacheReloadById(knownId[1], permitOnly));
        assertEquals(0L, permitOnly[0]);
        Native.evictPublicKeys(known);
        for (long id : new long[] {0L, -1L, Long.MIN_VALUE, Long.MAX_VALUE, 0x0123_4567_89AB_CDEFL}) {
            survived("publicKeyCacheGetById", id, refusals, () -> assertNull(NativeBridge.publicKeyCacheGetById(id)));
            survived("publicKeyCacheReloadById", id, refusals, () -> {
                long[] permitAndId = new long[2];
                NativeBridge.publicKeyCacheReloadById(id, permitAndId);
                if (permitAndId[0] != 0) {
                    endPermit(permitAndId[0]);
                }
            });
        }
        List<String> levels = new ArrayList<>(HOSTILE_STRINGS);
        levels.add(null);
        levels.add("{\"dev.awskms\":\"\u0000\"}");
        levels.add("{\"" + TEN_MB + "\":\"DEBUG\"}");
        for (String value : levels) {
            // Known: a 10 MB category name comes back whole in the refusal (telemetry/logs.rs, not
            // yet bounded like the others), so only the code is held here.
            try {
                Native.configureLogLevels(value);
            } catch (NativeException e) {
                assertEquals(NativeErrorCode.INVALID_ARGUMENT, e.code(), label(value));
            }
        }
        for (long wait : new long[] {0L, -1L, Long.MIN_VALUE}) {
            survived("drainLogRecords", wait, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.drainLogRecords(wait));
        }
        Native.wakeLogDrain();
        List<String> sources = new ArrayList<>(HOSTILE_STRINGS);
        sources.add(null);
        for (String value : sources) {
            survived("unknownKidNote", value, EnumSet.of(NativeErrorCode.INVALID_ARGUMENT),
                    () -> Native.unknownKidNote(value));
        }
        assertFalse(Native.logCategories().isEmpty());
        assertNotNull(Native.telemetryStats());
        assertNotNull(Native.signingOutcomes());
        signingStillWorks();
    }

    @Test
    @DisplayName("the argument-free natives still answer after all of the above")
    void argumentFreeNatives() throws IOException {
        assertFalse(Native.version().isBlank());
        assertFalse(Native.errorCodes().isEmpty());
        assertNotNull(JsonSerialization.mapper.readTree(Native.signingCatalogue()));
        assertNotNull(JsonSerialization.mapper.readTree(Native.signingKeyStats()));
        assertNotNull(JsonSerialization.mapper.readTree(Native.publicKeyCacheDefaults()));
        assertNotNull(JsonSerialization.mapper.readTree(Native.publicKeyCacheStats()));
        signingStillWorks();
    }
}
