package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;

import dev.awskms.keycloak.internal.Native;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.keys.PublicKeyLoader;
import org.keycloak.util.JsonSerialization;

/**
 * A Java {@link Error} thrown by Keycloak's loader while this storage leads a reload is the JVM's
 * business: it reaches the caller as the very object thrown, never turned into Keycloak's "Error when
 * loading public keys", and the reload is ended at once, so that the callers waiting for it are
 * answered now rather than when the permit expires.
 */
@DisplayName("Errors thrown by a public key loader")
class LoaderErrorsTest {

    private static PublicKeyStubs.World world;

    @BeforeAll
    static void createStorage() {
        world = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(
                Map.of(PublicKeyCachePolicy.MIN_TIME_BETWEEN_REQUESTS_KEY, "3600")));
    }

    static Stream<Arguments> errors() {
        return Stream.of(
                Arguments.of("OutOfMemoryError", (Supplier<Error>) () -> new OutOfMemoryError("Java heap space")),
                Arguments.of("StackOverflowError", (Supplier<Error>) StackOverflowError::new),
                Arguments.of("NoClassDefFoundError", (Supplier<Error>) () -> new NoClassDefFoundError("org/example/Gone")),
                Arguments.of("ExceptionInInitializerError", (Supplier<Error>) ExceptionInInitializerError::new));
    }

    private static long counter(String name) throws IOException {
        return JsonSerialization.mapper.readTree(Native.publicKeyCacheStats()).path(name).asLong();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("errors")
    @DisplayName("propagates as itself, and a caller waiting for that load is answered at once")
    void errorPropagatesAndTheFollowerIsReleased(String name, Supplier<Error> error) throws Exception {
        String source = "errors-" + UUID.randomUUID() + "::client::" + UUID.randomUUID() + "::keyuse::SIG";
        Error thrown = error.get();
        long coalescedBefore = counter("coalesced");
        long failuresBefore = counter("loadFailures");
        AtomicInteger calls = new AtomicInteger();
        long[] thrownAt = new long[1];
        PublicKeyLoader loader = new PublicKeyLoader() {
            @Override
            public PublicKeysWrapper loadKeys() {
                calls.incrementAndGet();
                // Throw only once the follower waits for this load (bounded: a bug fails, not hangs).
                long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
                try {
                    while (counter("coalesced") <= coalescedBefore && System.nanoTime() < giveUp) {
                        Thread.onSpinWait();
                    }
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
                thrownAt[0] = System.nanoTime();
                throw thrown;
            }
        };
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> leader = pool.submit(() -> world.session(null).storage()
                    .getPublicKey(source, "k", Algorithm.RS256, loader));
            // Give the leader its permit first.
            long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
            while (calls.get() == 0 && System.nanoTime() < giveUp) {
                Thread.onSpinWait();
            }
            Future<?> follower = pool.submit(() -> world.session(null).storage()
                    .getPublicKey(source, "k", Algorithm.RS256, loader));

            ExecutionException led = assertThrows(ExecutionException.class, () -> leader.get(30, TimeUnit.SECONDS));
            assertSame(thrown, led.getCause(), "the Error itself, not wrapped");

            ExecutionException followed = assertThrows(ExecutionException.class, () -> follower.get(30, TimeUnit.SECONDS));
            long releasedAfterMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - thrownAt[0]);
            assertTrue(followed.getCause() instanceof RuntimeException
                    && followed.getCause().getMessage().startsWith("Error when loading public keys: "),
                    String.valueOf(followed.getCause()));
            // Released by the ended permit, not by the fetch timeout (5 s) after which it would expire.
            assertTrue(releasedAfterMillis < 2000, "the follower waited " + releasedAfterMillis + " ms");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, calls.get(), "one load, by the leader");
        assertEquals(failuresBefore + 1, counter("loadFailures"), "the reload was failed, not left to expire");
    }
}
