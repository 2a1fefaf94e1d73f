package dev.awskms.keycloak.publickeys;

import java.io.IOException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;

import dev.awskms.keycloak.internal.NativeException;
import org.keycloak.Config;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;
import org.keycloak.util.JsonSerialization;

/**
 * The server options of provider {@value NativePublicKeyStorageProviderFactory#ID}
 * ({@code --spi-public-key-storage--native-lru--<option>}) and the options JSON they become for
 * {@code Native.configurePublicKeyCache}: only the options the operator set, under their own names
 * and in their own units. The native library applies the defaults and checks the limits; this class
 * only turns its refusal into a startup error that names the option as on the command line.
 */
final class PublicKeyCachePolicy {

    static final String MIN_TIME_BETWEEN_REQUESTS_KEY = "minTimeBetweenRequests";
    static final String MAX_ENTRIES_KEY = "maxEntries";
    static final String MAX_IDLE_KEY = "maxIdle";
    static final String MAX_AGE_KEY = "maxAge";
    static final String STALE_ON_ERROR_LIMIT_KEY = "staleOnErrorLimit";
    static final String FETCH_CONNECT_TIMEOUT_KEY = "fetchConnectTimeout";
    static final String FETCH_TIMEOUT_KEY = "fetchTimeout";
    static final String MAX_RESPONSE_SIZE_KEY = "maxResponseSize";
    static final String DENY_PRIVATE_NETWORKS_KEY = "denyPrivateNetworks";
    static final String DENIED_ADDRESSES_KEY = "deniedAddresses";
    static final String MIN_RSA_KEY_SIZE_KEY = "minRsaKeySize";

    /**
     * What {@code kc.sh} shows for the options; the help texts are the user documentation. The
     * defaults shown are the native library's, to which a test pins them; nothing applies them here.
     */
    static final List<ProviderConfigProperty> CONFIG_METADATA = ProviderConfigurationBuilder.create()
            .property().name(MIN_TIME_BETWEEN_REQUESTS_KEY).type("int").defaultValue(10)
                .helpText("Minimum interval in seconds between two downloads of one client's or identity provider's "
                        + "keys. A token with an unknown kid triggers a download at most once per interval; the "
                        + "interval counts attempts, so a failing endpoint is not retried sooner either. "
                        + "0 turns this protection of the key endpoints off.")
                .add()
            .property().name(MAX_ENTRIES_KEY).type("int").defaultValue(1000)
                .helpText("Maximum number of key sources (clients and identity providers) kept in the cache; the "
                        + "least recently used one is dropped first.")
                .add()
            .property().name(MAX_IDLE_KEY).type("int").defaultValue(3600)
                .helpText("Seconds after which a source's keys that nobody used are dropped.")
                .add()
            .property().name(MAX_AGE_KEY).type("int").defaultValue(86400)
                .helpText("Seconds after which a source's keys are downloaded again on their next use, even if "
                        + "every kid is known (a source's own expiry, such as SAML validUntil, may be earlier).")
                .add()
            .property().name(STALE_ON_ERROR_LIMIT_KEY).type("int").defaultValue(3600)
                .helpText("When a download fails, the last keys that loaded keep being used for at most this many "
                        + "seconds after they were due to be loaded again; 0 makes a failed download fail the "
                        + "lookups at once.")
                .add()
            .property().name(FETCH_CONNECT_TIMEOUT_KEY).type("int").defaultValue(2000)
                .helpText("Milliseconds to wait for the connection to a JWKS URL.")
                .add()
            .property().name(FETCH_TIMEOUT_KEY).type("int").defaultValue(5000)
                .helpText("Milliseconds a JWKS download may take in total; also the longest a request waits for "
                        + "a download another request started.")
                .add()
            .property().name(MAX_RESPONSE_SIZE_KEY).type("int").defaultValue(1024 * 1024)
                .helpText("Largest JWKS response accepted, in bytes.")
                .add()
            .property().name(DENY_PRIVATE_NETWORKS_KEY).type(ProviderConfigProperty.BOOLEAN_TYPE).defaultValue(false)
                .helpText("Also refuse JWKS downloads from loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::), "
                        + "private (10/8, 172.16/12, 192.168/16, fc00::/7) and shared (100.64/10) addresses, checked "
                        + "after DNS resolution and before connecting. Link-local addresses (169.254/16, fe80::/10) "
                        + "and cloud metadata addresses are always refused.")
                .add()
            .property().name(DENIED_ADDRESSES_KEY).type(ProviderConfigProperty.STRING_TYPE).defaultValue("")
                .helpText("More networks JWKS downloads are refused, in CIDR notation separated by commas "
                        + "(e.g. 203.0.113.0/24,2001:db8::/32); checked after DNS resolution and before connecting.")
                .add()
            .property().name(MIN_RSA_KEY_SIZE_KEY).type("int").defaultValue(2048)
                .helpText("Smallest RSA modulus, in bits, of a key in a downloaded JWKS that is used (512 to 16384); "
                        + "smaller keys, and keys whose public exponent is above 2^32, are skipped and logged at "
                        + "debug level.")
                .add()
            .build();

    /** No option set: every option at its native default. */
    static final PublicKeyCachePolicy ALL_DEFAULTS = new PublicKeyCachePolicy(new LinkedHashMap<>());

    /** The options the operator set, by option name, in the option's unit and type. */
    private final Map<String, Object> options;

    private PublicKeyCachePolicy(Map<String, Object> options) {
        this.options = Collections.unmodifiableMap(options);
    }

    /**
     * The options set on the server, read as their metadata type says; an option that is not set
     * is left to the native default. A list option (a string) goes to the native library as written.
     */
    static PublicKeyCachePolicy from(Config.Scope config) {
        Map<String, Object> set = new LinkedHashMap<>();
        for (ProviderConfigProperty option : CONFIG_METADATA) {
            String name = option.getName();
            Object value;
            switch (option.getType()) {
                case ProviderConfigProperty.BOOLEAN_TYPE:
                    value = config.getBoolean(name);
                    break;
                case ProviderConfigProperty.STRING_TYPE:
                    value = config.get(name);
                    break;
                default:
                    value = config.getInt(name);
            }
            if (value != null) {
                set.put(name, value);
            }
        }
        return new PublicKeyCachePolicy(set);
    }

    /** Whether the operator set no option at all. */
    boolean isEmpty() {
        return options.isEmpty();
    }

    /** The argument of {@code Native.configurePublicKeyCache}, without trusted certificates. */
    String toNativeJson() {
        return toJson(new LinkedHashMap<>(options));
    }

    /**
     * The argument of {@code Native.configurePublicKeyCache}.
     *
     * @param trustedCertificates base64 DER certificates that JWKS downloads over HTTPS trust
     */
    String toNativeJson(List<String> trustedCertificates) {
        Map<String, Object> json = new LinkedHashMap<>(options);
        json.put("trustedCertificates", trustedCertificates);
        return toJson(json);
    }

    /**
     * The startup error for options the native library refused. Its message names the option it
     * refused, which becomes the command-line spelling here; when it names none (a value that is
     * not even a number of the right kind), a lone option set must be the one.
     */
    IllegalArgumentException refused(NativeException e) {
        String refused = options.size() == 1 ? options.keySet().iterator().next() : null;
        for (String option : options.keySet()) {
            if (Pattern.compile("\\b" + option + "\\b").matcher(e.detail()).find()) {
                refused = option;
                break;
            }
        }
        if (refused == null) {
            return new IllegalArgumentException("Options --spi-public-key-storage--"
                    + NativePublicKeyStorageProviderFactory.ID + "--* are invalid: " + e.detail(), e);
        }
        return new IllegalArgumentException(String.format(Locale.ROOT, "Option %s is invalid: %s",
                commandLineName(refused), e.detail()), e);
    }

    @Override
    public String toString() {
        return options.isEmpty() ? "defaults" : options + ", other options at their defaults";
    }

    /** The CLI spelling of an option, e.g. {@code --spi-public-key-storage--native-lru--max-entries}. */
    static String commandLineName(String option) {
        return "--spi-public-key-storage--" + NativePublicKeyStorageProviderFactory.ID + "--"
                + option.replaceAll("([A-Z])", "-$1").toLowerCase(Locale.ROOT);
    }

    private static String toJson(Map<String, Object> json) {
        try {
            return JsonSerialization.writeValueAsString(json);
        } catch (IOException e) {
            throw new IllegalStateException("Could not encode the public key cache options as JSON", e);
        }
    }
}
