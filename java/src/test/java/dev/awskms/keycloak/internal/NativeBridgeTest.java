package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The native bridge")
class NativeBridgeTest {

    /** docs/design.md: the codes whose failures may go away on a later identical call. */
    private static final Set<NativeErrorCode> RETRYABLE = EnumSet.of(
            NativeErrorCode.THROTTLED, NativeErrorCode.KMS_UNAVAILABLE, NativeErrorCode.TIMEOUT, NativeErrorCode.NETWORK,
            NativeErrorCode.PUBLIC_KEYS_UNAVAILABLE);

    @BeforeAll
    static void loadLibrary() {
        Native.ensureLoaded();
    }

    private static Set<String> nativeMethods(Class<?> type) {
        return Arrays.stream(type.getDeclaredMethods())
                .filter(m -> Modifier.isNative(m.getModifiers()))
                .map(Method::getName)
                .collect(Collectors.toCollection(TreeSet::new));
    }

    @Test
    @DisplayName("is a package-private class of static natives only, so that Native is the only way in")
    void isClosedToOtherPackages() {
        assertFalse(Modifier.isPublic(NativeBridge.class.getModifiers()));
        assertTrue(Modifier.isFinal(NativeBridge.class.getModifiers()));
        for (Method method : NativeBridge.class.getDeclaredMethods()) {
            assertTrue(Modifier.isStatic(method.getModifiers()) && Modifier.isNative(method.getModifiers()),
                    method.getName());
            assertFalse(Modifier.isPublic(method.getModifiers()), method.getName());
        }
    }

    @Test
    @DisplayName("resolves every native method the class declares")
    void everyNativeResolves() {
        // A native added to NativeBridge must be added here, so that it is called below.
        assertEquals(new TreeSet<>(List.of("version", "errorCodes", "signingCatalogue", "configureSigningPolicy",
                "describeSigningKey",
                "signingKeyHandle", "sign", "releaseSigningKey", "signingKeyStats", "publicKeyCacheConfigure",
                "publicKeyCacheDefaults", "publicKeyCacheGet", "publicKeyCacheGetById", "publicKeyCacheReload",
                "publicKeyCacheReloadById", "publicKeyCacheCompleteReload",
                "publicKeyCacheFailReload", "publicKeyCacheEvict", "publicKeyCacheEvictPrefix", "publicKeyCacheClear",
                "publicKeyCacheStats", "fetchJwks", "logCategories", "configureLogLevels", "drainLogRecords",
                "wakeLogDrain", "telemetryStats", "signingOutcomes", "unknownKidNote")),
                nativeMethods(NativeBridge.class));

        // An unbound native throws UnsatisfiedLinkError; a bound one returns or throws NativeException.
        assertFalse(NativeBridge.version().isBlank(), "version is blank");
        assertTrue(NativeBridge.errorCodes().length > 0, "no error codes");
        assertTrue(NativeBridge.signingCatalogue().startsWith("{"), "catalogue is not JSON");
        assertThrows(NativeException.class, () -> NativeBridge.configureSigningPolicy("{\"unknownOption\":\"x\"}"));
        assertThrows(NativeException.class, () -> NativeBridge.describeSigningKey("{}"));
        assertThrows(NativeException.class, () -> NativeBridge.signingKeyHandle("NativeBridgeTest::component", "{}"));
        assertThrows(NativeException.class, () -> NativeBridge.sign(-1L, "SHA256withRSA", new byte[0]));
        NativeBridge.releaseSigningKey("NativeBridgeTest::no-such-component");
        assertTrue(NativeBridge.signingKeyStats().startsWith("{"), "signing key stats are not JSON");
        // The public key cache natives, with arguments that change nothing shared.
        assertThrows(NativeException.class, () -> NativeBridge.publicKeyCacheConfigure("{not json"));
        assertTrue(NativeBridge.publicKeyCacheDefaults().startsWith("{"), "defaults are not JSON");
        long[] sourceId = {-1L};
        assertNull(NativeBridge.publicKeyCacheGet("NativeBridgeTest::no-such-source", sourceId));
        assertEquals(0L, sourceId[0], "a source that is not cached has no id");
        assertNull(NativeBridge.publicKeyCacheGetById(-1L));
        long[] noSuchId = {-1L, -1L};
        assertNull(NativeBridge.publicKeyCacheReloadById(-1L, noSuchId));
        assertArrayEquals(new long[] {0L, 0L}, noSuchId, "an id that names no source is answered as unknown");
        long[] permit = new long[1];
        assertNull(NativeBridge.publicKeyCacheReload("NativeBridgeTest::" + UUID.randomUUID(), permit));
        assertNotEquals(0L, permit[0], "the first reload of a source leads");
        assertThrows(NativeException.class,
                () -> NativeBridge.publicKeyCacheFailReload(permit[0], "NativeBridgeTest: nothing to load"));
        assertThrows(NativeException.class, () -> NativeBridge.publicKeyCacheCompleteReload(permit[0], null, 0L));
        NativeBridge.publicKeyCacheEvict("NativeBridgeTest::no-such-source");
        NativeBridge.publicKeyCacheEvictPrefix("NativeBridgeTest::no-such-realm::");
        assertTrue(NativeBridge.publicKeyCacheStats().startsWith("{"), "stats are not JSON");
        assertThrows(NativeException.class, () -> NativeBridge.fetchJwks("not a url", "sig"));
        // publicKeyCacheClear is bound too, but clearing would disturb other tests' entries;
        // PublicKeyCacheBridgeTest calls it.
        assertTrue(NativeBridge.logCategories().length > 0, "no log categories");
        assertTrue(NativeBridge.telemetryStats().startsWith("{"), "telemetry stats are not JSON");
        assertFalse(NativeBridge.signingOutcomes().isBlank(), "signing outcomes are blank");
        NativeBridge.wakeLogDrain();
        // configureLogLevels, drainLogRecords and unknownKidNote change what the log thread sees:
        // NativeLogDrainTest and NativeHostileArgumentsTest call them.
    }

    @Test
    @DisplayName("resolves the test-only natives of the test-hooks build")
    void testHooksResolve() {
        assertEquals(new TreeSet<>(List.of("panicForTesting", "failForTesting")), nativeMethods(NativeTestHooks.class));
        assertThrows(NativeException.class, NativeTestHooks::panicForTesting);
        assertThrows(NativeException.class, () -> NativeTestHooks.failForTesting("INTERNAL"));
    }

    @Test
    @DisplayName("maps every error code Rust can throw to a Java constant, and every constant is produced by Rust")
    void errorCodesMatchInBothDirections() {
        Set<String> rust = new TreeSet<>(Native.errorCodes());
        Set<String> java = Arrays.stream(NativeErrorCode.values()).map(Enum::name).collect(Collectors.toCollection(TreeSet::new));
        assertEquals(java, rust, "Rust error codes and NativeErrorCode differ");
        assertEquals(Native.errorCodes().size(), rust.size(), "Rust lists a code twice");
    }

    @Test
    @DisplayName("throws each error code with the retryable flag of the contract")
    void failForTestingThrowsEachCode() {
        for (String wireCode : Native.errorCodes()) {
            NativeException e = assertThrows(NativeException.class, () -> NativeTestHooks.failForTesting(wireCode), wireCode);
            assertEquals(wireCode, e.wireCode());
            assertEquals(NativeErrorCode.fromWire(wireCode), e.code());
            assertEquals(RETRYABLE.contains(e.code()), e.retryable(), wireCode + " retryable flag");
            assertTrue(e.getMessage().startsWith(wireCode + ": "), e.getMessage());
        }
    }

    @Test
    @DisplayName("turns a Rust panic into a NativeException with code PANIC and keeps the JVM usable")
    void panicBecomesAnException() {
        NativeException e = assertThrows(NativeException.class, NativeTestHooks::panicForTesting);
        assertEquals(NativeErrorCode.PANIC, e.code());
        assertFalse(e.retryable());
        // The library and the JVM still work after the panic.
        assertNotNull(Native.version());
        assertThrows(NativeException.class, NativeTestHooks::panicForTesting);
        assertEquals(NativeErrorCode.KEY_NOT_FOUND,
                assertThrows(NativeException.class, () -> NativeTestHooks.failForTesting("KEY_NOT_FOUND")).code());
    }

    @Test
    @DisplayName("rejects malformed configuration JSON with INVALID_ARGUMENT")
    void malformedJsonIsInvalidArgument() {
        NativeException e = assertThrows(NativeException.class,
                () -> Native.signingKeyHandle("NativeBridgeTest::component", "{not json"));
        assertEquals(NativeErrorCode.INVALID_ARGUMENT, e.code());
    }

    @Test
    @DisplayName("rejects an unknown signing handle with INVALID_HANDLE")
    void unknownHandleIsInvalidHandle() {
        NativeException e = assertThrows(NativeException.class,
                () -> Native.sign(Long.MIN_VALUE + 12345, "SHA256withRSA", new byte[] {1}));
        assertEquals(NativeErrorCode.INVALID_HANDLE, e.code());
    }

    @Test
    @DisplayName("maps an error code it does not know to INTERNAL but keeps the wire code in the message")
    void unknownWireCodeDoesNotCrash() {
        NativeException e = new NativeException("SOMETHING_NEWER", true, "from a newer library");
        assertEquals(NativeErrorCode.INTERNAL, e.code());
        assertEquals("SOMETHING_NEWER", e.wireCode());
        assertTrue(e.retryable());
        assertEquals("SOMETHING_NEWER: from a newer library", e.getMessage());
        assertEquals(NativeErrorCode.INTERNAL, new NativeException(null, false, null).code());
    }
}
