package dev.awskms.keycloak.operator;

import java.io.IOException;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;
import dev.awskms.keycloak.internal.Native;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import org.jboss.logging.Logger;
import org.keycloak.util.JsonSerialization;

/**
 * The extension's meters in Keycloak's metrics endpoint ({@code --metrics-enabled=true}, management
 * port, {@code /metrics}), registered in Micrometer's global registry, to which Keycloak's Quarkus
 * adds its Prometheus registry. Names and tags are listed in docs/operations.md; no meter has a realm
 * tag (their number would grow with realms and clients).
 *
 * <p>The counts live in the native library; each meter reads a snapshot ({@link Native#telemetryStats},
 * {@link Native#publicKeyCacheStats}) taken at most once a second, and reads zero while the library
 * is not loaded (scraping never loads it). Counters whose tags appear only with traffic (a KMS
 * operation's outcome, a retry's cause) are registered when they first appear: {@link #refresh} runs
 * on the native log thread's schedule and before every snapshot.
 */
public final class KmsMetrics {

    static final String PREFIX = "keycloak.aws.kms.";
    private static final long SNAPSHOT_NANOS = 1_000_000_000L;
    private static final Logger LOG = Logger.getLogger(KmsMetrics.class);

    private final MeterRegistry registry;
    private final Supplier<Boolean> libraryLoaded;
    private final Set<String> registered = ConcurrentHashMap.newKeySet();
    private volatile Snapshot snapshot = Snapshot.EMPTY;

    KmsMetrics(MeterRegistry registry, Supplier<Boolean> libraryLoaded) {
        this.registry = registry;
        this.libraryLoaded = libraryLoaded;
    }

    /** The meters in {@code registry}, reading the native library once it is loaded. */
    public static KmsMetrics register(MeterRegistry registry) {
        KmsMetrics metrics = new KmsMetrics(registry, Native::isLoaded);
        metrics.registerFixedMeters();
        return metrics;
    }

    private void registerFixedMeters() {
        counter("throttles", "Throttling answers from KMS (ThrottlingException, LimitExceededException), "
                + "retried or not", s -> s.telemetry.path("kms").path("throttles").asDouble());
        counter("log.records.dropped", "Native log records dropped because the queue was full",
                s -> s.telemetry.path("logs").path("dropped").asDouble());
        gauge("signing.keys", "aws-kms signing keys registered on this node",
                s -> s.telemetry.path("signingKeys").path("keys").asDouble());
        gauge("clients", "KMS clients held on this node",
                s -> s.telemetry.path("signingKeys").path("clients").asDouble());
        gauge("jni.global.references", "JNI global references the native library holds (cached public key sets)",
                s -> s.telemetry.path("jni").path("globalReferences").asDouble());
        for (Map.Entry<String, String> entry : Map.of(
                "hits", "Lookups answered with fresh cached keys",
                "misses", "Lookups that found no fresh keys",
                "loads", "Reloads started (native downloads and Keycloak's loaders)",
                "loadFailures", "Reloads that failed",
                "throttled", "Reloads refused by the per-source window (min-time-between-requests)",
                "coalesced", "Reloads that waited for another request's load instead of starting one",
                "staleServed", "Answers with keys that were not fresh (stale-on-error, throttled)").entrySet()) {
            String member = entry.getKey();
            counter("public.keys." + meterName(member), entry.getValue(),
                    s -> s.publicKeys.path(member).asDouble());
        }
        gauge("public.keys.entries", "Sources held by the native-lru public key storage",
                s -> s.publicKeys.path("entries").asDouble());
        counter("public.keys.downloads", "JWKS downloads by the native-lru storage", "outcome", "success",
                s -> s.telemetry.path("jwks").path("downloads").asDouble());
        counter("public.keys.downloads", "JWKS downloads by the native-lru storage", "outcome", "failure",
                s -> s.telemetry.path("jwks").path("downloadFailures").asDouble());
    }

    /** Registers the counters of tags that appeared since the last call. */
    public void refresh() {
        Snapshot current = current();
        for (JsonNode call : current.telemetry.path("kms").path("calls")) {
            String operation = call.path("operation").asText();
            String outcome = call.path("outcome").asText();
            counter("requests", "Requests made to KMS (every attempt), by operation and outcome "
                    + "(success or the error code)", new String[] {"operation", operation, "outcome", outcome},
                    s -> find(s.telemetry.path("kms").path("calls"), "operation", operation, "outcome", outcome));
        }
        for (JsonNode retry : current.telemetry.path("kms").path("retries")) {
            String code = retry.path("code").asText();
            counter("retries", "KMS requests made again within a call, by the error code of the attempt before",
                    new String[] {"code", code},
                    s -> find(s.telemetry.path("kms").path("retries"), "code", code, null, null));
        }
    }

    private static double find(JsonNode entries, String name, String value, String otherName, String otherValue) {
        for (JsonNode entry : entries) {
            if (value.equals(entry.path(name).asText())
                    && (otherName == null || otherValue.equals(entry.path(otherName).asText()))) {
                return entry.path("count").asDouble();
            }
        }
        return 0;
    }

    private void counter(String name, String description, java.util.function.ToDoubleFunction<Snapshot> value) {
        counter(name, description, new String[0], value);
    }

    private void counter(String name, String description, String tagName, String tagValue,
            java.util.function.ToDoubleFunction<Snapshot> value) {
        counter(name, description, new String[] {tagName, tagValue}, value);
    }

    private void counter(String name, String description, String[] tags,
            java.util.function.ToDoubleFunction<Snapshot> value) {
        String key = name + String.join("\u0000", tags);
        if (registered.add(key)) {
            FunctionCounter.builder(PREFIX + name, this, metrics -> value.applyAsDouble(metrics.current()))
                    .description(description).tags(tags).register(registry);
        }
    }

    private void gauge(String name, String description, java.util.function.ToDoubleFunction<Snapshot> value) {
        if (registered.add(name)) {
            Gauge.builder(PREFIX + name, this, metrics -> value.applyAsDouble(metrics.current()))
                    .description(description).register(registry);
        }
    }

    /** {@code loadFailures} → {@code load.failures}: Micrometer's dotted lower-case names. */
    static String meterName(String member) {
        return member.replaceAll("([A-Z])", ".$1").toLowerCase(java.util.Locale.ROOT);
    }

    /** The latest snapshot, taken again when older than a second; empty while the library is not loaded. */
    Snapshot current() {
        Snapshot last = snapshot;
        long now = System.nanoTime();
        if (last != Snapshot.EMPTY && now - last.takenAt < SNAPSHOT_NANOS) {
            return last;
        }
        if (!libraryLoaded.get()) {
            return Snapshot.EMPTY;
        }
        try {
            Snapshot taken = new Snapshot(now, JsonSerialization.mapper.readTree(Native.telemetryStats()),
                    JsonSerialization.mapper.readTree(Native.publicKeyCacheStats()));
            snapshot = taken;
            return taken;
        } catch (IOException | RuntimeException e) {
            LOG.debugf("Could not read the native counters: %s", e);
            return last;
        }
    }

    /** The native counters at one moment. */
    static final class Snapshot {
        static final Snapshot EMPTY = new Snapshot(0, MissingNode.getInstance(), MissingNode.getInstance());

        final long takenAt;
        final JsonNode telemetry;
        final JsonNode publicKeys;

        Snapshot(long takenAt, JsonNode telemetry, JsonNode publicKeys) {
            this.takenAt = takenAt;
            this.telemetry = telemetry;
            this.publicKeys = publicKeys;
        }
    }
}
