package dev.awskms.keycloak.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeErrorCode;
import dev.awskms.keycloak.internal.NativeException;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.jboss.logging.Logger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.util.JsonSerialization;

@DisplayName("The native log thread and the meters")
class NativeLogDrainTest {

    private static final String PUBLIC_KEYS = "dev.awskms.keycloak.native.publickeys";

    private record Line(String category, Logger.Level level, String message) {
    }

    private final List<Line> lines = new CopyOnWriteArrayList<>();
    private final NativeLogDrain drain = new NativeLogDrain(
            (category, level, message) -> lines.add(new Line(category, level, message)), () -> true);

    @BeforeAll
    static void load() {
        Native.ensureLoaded();
    }

    /** A JWKS download the native side refuses before connecting (a link-local address), at a URL of its own. */
    private static String failDownload(String path) {
        String url = "http://user:pw@169.254.169.254/" + path + "?token=s3cr3t";
        NativeException refused = assertThrows(NativeException.class, () -> Native.fetchJwks(url, "sig"));
        assertEquals(NativeErrorCode.JWKS_FETCH_FAILED, refused.code());
        return "http://169.254.169.254/" + path;
    }

    private Line awaitLine(String containing) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline) {
            drain.drainOnce(200);
            for (Line line : lines) {
                if (line.message().contains(containing)) {
                    return line;
                }
            }
        }
        throw new AssertionError("no native record containing " + containing + " in " + lines);
    }

    @Test
    @DisplayName("writes a failed JWKS download as a warning of its category, without the URL's credentials or query")
    void aFailedDownloadIsAWarningWithoutCredentials() {
        String shown = failDownload("h4-" + UUID.randomUUID());
        Line line = awaitLine(shown);
        assertEquals(PUBLIC_KEYS, line.category());
        assertEquals(Logger.Level.WARN, line.level());
        assertTrue(line.message().contains("link-local"), line.message());
        assertFalse(line.message().contains("pw@") || line.message().contains("s3cr3t"), line.message());
    }

    @Test
    @DisplayName("logs the same failing URL at WARN once per window, the repeats at DEBUG only")
    void repeatsOfAFailureAreNotWarnings() throws Exception {
        Native.configureLogLevels("{\"" + PUBLIC_KEYS + "\":\"DEBUG\"}");
        try {
            String path = "h4-" + UUID.randomUUID();
            String shown = failDownload(path);
            failDownload(path);
            failDownload(path);
            awaitLine(shown);
            drain.drainOnce(200);
            long warnings = lines.stream().filter(l -> l.message().contains(shown))
                    .filter(l -> l.level() == Logger.Level.WARN).count();
            long debugs = lines.stream().filter(l -> l.message().contains(shown))
                    .filter(l -> l.level() == Logger.Level.DEBUG).count();
            assertEquals(1, warnings, lines.toString());
            assertEquals(2, debugs, lines.toString());
        } finally {
            Native.configureLogLevels(NativeLogDrain.levelsJson());
        }
    }

    @Test
    @DisplayName("hands the native side a level for every category, as JBoss Logging has them")
    void levelsCoverEveryCategory() throws Exception {
        JsonNode levels = JsonSerialization.mapper.readTree(NativeLogDrain.levelsJson());
        assertEquals(Native.logCategories().size(), levels.size());
        for (String category : Native.logCategories()) {
            assertTrue(List.of("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF").contains(levels.path(category).asText()),
                    category);
        }
        Native.configureLogLevels(levels.toString());
        NativeException refused = assertThrows(NativeException.class,
                () -> Native.configureLogLevels("{\"dev.awskms.keycloak.native.nope\":\"DEBUG\"}"));
        assertEquals(NativeErrorCode.INVALID_ARGUMENT, refused.code());
    }

    @Test
    @DisplayName("stops at once while it waits in the native library")
    void stopsPromptly() throws Exception {
        NativeLogDrain running = new NativeLogDrain((category, level, message) -> { }, () -> true);
        running.start();
        Thread.sleep(300);
        assertTrue(running.isRunning());
        long started = System.nanoTime();
        running.stop(5_000);
        long elapsedMillis = (System.nanoTime() - started) / 1_000_000;
        assertFalse(running.isRunning());
        assertTrue(elapsedMillis < 1_500, "stop took " + elapsedMillis + " ms");
    }

    @Test
    @DisplayName("warns of a source's unknown kid once per window, then only at DEBUG")
    void unknownKidsWarnOncePerSource() {
        String source = "realm-" + UUID.randomUUID() + "::client";
        int warnings = 0;
        for (int i = 0; i < 100; i++) {
            if (Native.unknownKidNote(source) != null) {
                warnings++;
            }
        }
        assertEquals(1, warnings);
        assertNotNull(Native.unknownKidNote(source + "-other"));
    }

    @Test
    @DisplayName("counts failed JWKS downloads in the Micrometer registry")
    void metersFollowTheNativeCounters() throws Exception {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        // The meters hold their KmsMetrics weakly (Micrometer's function meters); keep it.
        KmsMetrics metrics = KmsMetrics.register(registry);
        double before = registry.get("keycloak.aws.kms.public.keys.downloads").tag("outcome", "failure")
                .functionCounter().count();
        failDownload("h4-" + UUID.randomUUID());
        failDownload("h4-" + UUID.randomUUID());
        Thread.sleep(1_100);
        double after = registry.get("keycloak.aws.kms.public.keys.downloads").tag("outcome", "failure")
                .functionCounter().count();
        assertEquals(before + 2, after);
        assertNotNull(registry.get("keycloak.aws.kms.public.keys.hits").functionCounter());
        assertNotNull(registry.get("keycloak.aws.kms.public.keys.entries").gauge());
        assertEquals("load.failures", KmsMetrics.meterName("loadFailures"));
        metrics.refresh();
    }
}
