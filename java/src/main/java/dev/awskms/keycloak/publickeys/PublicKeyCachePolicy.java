package dev.awskms.keycloak.publickeys;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.keycloak.Config;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;
import org.keycloak.util.JsonSerialization;

/**
 * The server options of provider {@value NativePublicKeyStorageProviderFactory#ID}
 * ({@code --spi-public-key-storage--native-lru--<option>}) and the policy JSON they become for
 * {@code NativePublicKeyCache.configure}. The window and the stale-on-error limit may be 0 (no
 * throttling; failures surface at once), every other value must be positive; a bad value stops the
 * server at startup with the option's name, rather than running with a surprising cache.
 */
final class PublicKeyCachePolicy {

    static final String MIN_TIME_BETWEEN_REQUESTS_KEY = "minTimeBetweenRequests";
    static final int DEFAULT_MIN_TIME_BETWEEN_REQUESTS_SECONDS = 10;
    static final String MAX_ENTRIES_KEY = "maxEntries";
    static final int DEFAULT_MAX_ENTRIES = 1000;
    static final String MAX_IDLE_KEY = "maxIdle";
    static final int DEFAULT_MAX_IDLE_SECONDS = 3600;
    static final String MAX_AGE_KEY = "maxAge";
    static final int DEFAULT_MAX_AGE_SECONDS = 86400;
    static final String STALE_ON_ERROR_LIMIT_KEY = "staleOnErrorLimit";
    static final int DEFAULT_STALE_ON_ERROR_LIMIT_SECONDS = 3600;
    static final String FETCH_CONNECT_TIMEOUT_KEY = "fetchConnectTimeout";
    static final int DEFAULT_FETCH_CONNECT_TIMEOUT_MILLIS = 2000;
    static final String FETCH_TIMEOUT_KEY = "fetchTimeout";
    static final int DEFAULT_FETCH_TIMEOUT_MILLIS = 5000;
    static final String MAX_RESPONSE_SIZE_KEY = "maxResponseSize";
    static final int DEFAULT_MAX_RESPONSE_SIZE_BYTES = 1024 * 1024;

    static final PublicKeyCachePolicy DEFAULTS = new PublicKeyCachePolicy(
            DEFAULT_MIN_TIME_BETWEEN_REQUESTS_SECONDS, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_IDLE_SECONDS,
            DEFAULT_MAX_AGE_SECONDS, DEFAULT_STALE_ON_ERROR_LIMIT_SECONDS, DEFAULT_FETCH_CONNECT_TIMEOUT_MILLIS,
            DEFAULT_FETCH_TIMEOUT_MILLIS, DEFAULT_MAX_RESPONSE_SIZE_BYTES);

    /** What {@code kc.sh} shows for the options; the help texts are the user documentation. */
    static final List<ProviderConfigProperty> CONFIG_METADATA = ProviderConfigurationBuilder.create()
            .property().name(MIN_TIME_BETWEEN_REQUESTS_KEY).type("int")
                .defaultValue(DEFAULT_MIN_TIME_BETWEEN_REQUESTS_SECONDS)
                .helpText("Minimum interval in seconds between two downloads of one client's or identity provider's "
                        + "keys. A token with an unknown kid triggers a download at most once per interval; the "
                        + "interval counts attempts, so a failing endpoint is not retried sooner either. "
                        + "0 turns this protection of the key endpoints off.")
                .add()
            .property().name(MAX_ENTRIES_KEY).type("int").defaultValue(DEFAULT_MAX_ENTRIES)
                .helpText("Maximum number of key sources (clients and identity providers) kept in the cache; the "
                        + "least recently used one is dropped first.")
                .add()
            .property().name(MAX_IDLE_KEY).type("int").defaultValue(DEFAULT_MAX_IDLE_SECONDS)
                .helpText("Seconds after which a source's keys that nobody used are dropped.")
                .add()
            .property().name(MAX_AGE_KEY).type("int").defaultValue(DEFAULT_MAX_AGE_SECONDS)
                .helpText("Seconds after which a source's keys are downloaded again on their next use, even if "
                        + "every kid is known (a source's own expiry, such as SAML validUntil, may be earlier).")
                .add()
            .property().name(STALE_ON_ERROR_LIMIT_KEY).type("int").defaultValue(DEFAULT_STALE_ON_ERROR_LIMIT_SECONDS)
                .helpText("When a download fails, the last keys that loaded keep being used for at most this many "
                        + "seconds after they were due to be loaded again; 0 makes a failed download fail the "
                        + "lookups at once.")
                .add()
            .property().name(FETCH_CONNECT_TIMEOUT_KEY).type("int").defaultValue(DEFAULT_FETCH_CONNECT_TIMEOUT_MILLIS)
                .helpText("Milliseconds to wait for the connection to a JWKS URL.")
                .add()
            .property().name(FETCH_TIMEOUT_KEY).type("int").defaultValue(DEFAULT_FETCH_TIMEOUT_MILLIS)
                .helpText("Milliseconds a JWKS download may take in total; also the longest a request waits for "
                        + "a download another request started.")
                .add()
            .property().name(MAX_RESPONSE_SIZE_KEY).type("int").defaultValue(DEFAULT_MAX_RESPONSE_SIZE_BYTES)
                .helpText("Largest JWKS response accepted, in bytes.")
                .add()
            .build();

    final int minTimeBetweenRequestsSeconds;
    final int maxEntries;
    final int maxIdleSeconds;
    final int maxAgeSeconds;
    final int staleOnErrorLimitSeconds;
    final int fetchConnectTimeoutMillis;
    final int fetchTimeoutMillis;
    final int maxResponseSizeBytes;

    PublicKeyCachePolicy(int minTimeBetweenRequestsSeconds, int maxEntries, int maxIdleSeconds, int maxAgeSeconds,
            int staleOnErrorLimitSeconds, int fetchConnectTimeoutMillis, int fetchTimeoutMillis,
            int maxResponseSizeBytes) {
        this.minTimeBetweenRequestsSeconds = notNegative(MIN_TIME_BETWEEN_REQUESTS_KEY, minTimeBetweenRequestsSeconds);
        this.maxEntries = positive(MAX_ENTRIES_KEY, maxEntries);
        this.maxIdleSeconds = positive(MAX_IDLE_KEY, maxIdleSeconds);
        this.maxAgeSeconds = positive(MAX_AGE_KEY, maxAgeSeconds);
        this.staleOnErrorLimitSeconds = notNegative(STALE_ON_ERROR_LIMIT_KEY, staleOnErrorLimitSeconds);
        this.fetchConnectTimeoutMillis = positive(FETCH_CONNECT_TIMEOUT_KEY, fetchConnectTimeoutMillis);
        this.fetchTimeoutMillis = positive(FETCH_TIMEOUT_KEY, fetchTimeoutMillis);
        this.maxResponseSizeBytes = positive(MAX_RESPONSE_SIZE_KEY, maxResponseSizeBytes);
    }

    /** The options as set on the server; an unset option takes its default. */
    static PublicKeyCachePolicy from(Config.Scope config) {
        return new PublicKeyCachePolicy(
                config.getInt(MIN_TIME_BETWEEN_REQUESTS_KEY, DEFAULT_MIN_TIME_BETWEEN_REQUESTS_SECONDS),
                config.getInt(MAX_ENTRIES_KEY, DEFAULT_MAX_ENTRIES),
                config.getInt(MAX_IDLE_KEY, DEFAULT_MAX_IDLE_SECONDS),
                config.getInt(MAX_AGE_KEY, DEFAULT_MAX_AGE_SECONDS),
                config.getInt(STALE_ON_ERROR_LIMIT_KEY, DEFAULT_STALE_ON_ERROR_LIMIT_SECONDS),
                config.getInt(FETCH_CONNECT_TIMEOUT_KEY, DEFAULT_FETCH_CONNECT_TIMEOUT_MILLIS),
                config.getInt(FETCH_TIMEOUT_KEY, DEFAULT_FETCH_TIMEOUT_MILLIS),
                config.getInt(MAX_RESPONSE_SIZE_KEY, DEFAULT_MAX_RESPONSE_SIZE_BYTES));
    }

    /**
     * The argument of {@code NativePublicKeyCache.configure}.
     *
     * @param trustedCertificates base64 DER certificates that JWKS downloads over HTTPS trust
     */
    String toNativeJson(List<String> trustedCertificates) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("minTimeBetweenRequestsMillis", TimeUnit.SECONDS.toMillis(minTimeBetweenRequestsSeconds));
        json.put("maxEntries", maxEntries);
        json.put("maxIdleMillis", TimeUnit.SECONDS.toMillis(maxIdleSeconds));
        json.put("maxAgeMillis", TimeUnit.SECONDS.toMillis(maxAgeSeconds));
        json.put("staleOnErrorMillis", TimeUnit.SECONDS.toMillis(staleOnErrorLimitSeconds));
        json.put("fetchConnectTimeoutMillis", fetchConnectTimeoutMillis);
        json.put("fetchTimeoutMillis", fetchTimeoutMillis);
        json.put("maxResponseBytes", maxResponseSizeBytes);
        json.put("trustedCertificates", trustedCertificates);
        try {
            return JsonSerialization.writeValueAsString(json);
        } catch (IOException e) {
            throw new IllegalStateException("Could not encode the public key cache policy as JSON", e);
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT,
                "minTimeBetweenRequests=%ds maxEntries=%d maxIdle=%ds maxAge=%ds staleOnErrorLimit=%ds "
                        + "fetchConnectTimeout=%dms fetchTimeout=%dms maxResponseSize=%d bytes",
                minTimeBetweenRequestsSeconds, maxEntries, maxIdleSeconds, maxAgeSeconds, staleOnErrorLimitSeconds,
                fetchConnectTimeoutMillis, fetchTimeoutMillis, maxResponseSizeBytes);
    }

    private static int positive(String option, int value) {
        return atLeast(1, option, value);
    }

    private static int notNegative(String option, int value) {
        return atLeast(0, option, value);
    }

    private static int atLeast(int minimum, String option, int value) {
        if (value < minimum) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "Option --spi-public-key-storage--%s--%s must be %s, got %d",
                    NativePublicKeyStorageProviderFactory.ID, kebab(option),
                    minimum == 0 ? "0 or more" : "a positive number", value));
        }
        return value;
    }

    /** The CLI spelling of an option, e.g. {@code min-time-between-requests}. */
    static String kebab(String option) {
        return option.replaceAll("([A-Z])", "-$1").toLowerCase(Locale.ROOT);
    }
}
