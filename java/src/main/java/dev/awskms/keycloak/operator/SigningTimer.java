package dev.awskms.keycloak.operator;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

import dev.awskms.keycloak.internal.NativeException;
import io.micrometer.core.instrument.Metrics;
import io.micrometer.core.instrument.Timer;

/**
 * The latency of every KMS signature as Keycloak waits for it (retries included), as the histogram
 * {@code keycloak.aws.kms.sign.duration} (Prometheus {@code keycloak_aws_kms_sign_duration_seconds})
 * with the tag {@code outcome}: {@code success} or the native error code. Registered in Micrometer's
 * global registry, which Keycloak's metrics endpoint reads; without Micrometer it does nothing.
 */
public final class SigningTimer {

    /** The histogram's buckets: a KMS Sign takes tens of milliseconds, a call at most its 5 s deadline. */
    static final Duration[] BUCKETS = {
        Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(25), Duration.ofMillis(50),
        Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(500), Duration.ofSeconds(1),
        Duration.ofMillis(2500), Duration.ofSeconds(5), Duration.ofSeconds(10),
    };

    private static final Map<String, Timer> TIMERS = new ConcurrentHashMap<>();
    private static volatile boolean unavailable;

    private SigningTimer() {
    }

    /** Runs one signature and records its duration and outcome. */
    public static byte[] time(Supplier<byte[]> signature) {
        long started = System.nanoTime();
        String outcome = "error";
        try {
            byte[] signed = signature.get();
            outcome = "success";
            return signed;
        } catch (NativeException e) {
            outcome = e.wireCode();
            throw e;
        } finally {
            record(outcome, System.nanoTime() - started);
        }
    }

    static void record(String outcome, long nanos) {
        if (unavailable) {
            return;
        }
        try {
            TIMERS.computeIfAbsent(outcome, SigningTimer::timer).record(Duration.ofNanos(nanos));
        } catch (LinkageError e) {
            // Micrometer is not on the class path (not a Keycloak server): nothing to record into.
            unavailable = true;
        }
    }

    private static Timer timer(String outcome) {
        return Timer.builder(KmsMetrics.PREFIX + "sign.duration")
                .description("AWS KMS signatures as Keycloak waits for them, retries included")
                .tag("outcome", outcome)
                .serviceLevelObjectives(BUCKETS)
                .register(Metrics.globalRegistry);
    }
}
