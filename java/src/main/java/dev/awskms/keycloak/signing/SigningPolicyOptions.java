package dev.awskms.keycloak.signing;

import java.io.IOException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import dev.awskms.keycloak.internal.NativeException;
import org.keycloak.Config;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;
import org.keycloak.util.JsonSerialization;

/**
 * The server options of key provider {@value KmsKeyProviderFactory#ID}
 * ({@code --spi-keys--aws-kms--<option>}): the operator's policy for what realm administrators may
 * configure. This class only reads the options Keycloak has and hands those that are set to the
 * native library as written ({@code Native.configureSigningPolicy}); their syntax, defaults and
 * meaning are the native library's ({@code rust/core/src/signing/policy.rs}), which also words the
 * refusals. The defaults shown here are pinned to the native ones by a test.
 */
final class SigningPolicyOptions {

    static final String ALLOWED_CREDENTIALS_MODES_KEY = "allowedCredentialsModes";
    static final String AMBIENT_IDENTITY_REALMS_KEY = "ambientIdentityRealms";
    static final String ALLOWED_KEY_IDS_KEY = "allowedKeyIds";
    static final String ALLOWED_ROLE_ARNS_KEY = "allowedRoleArns";
    static final String ALLOWED_ENDPOINT_HOSTS_KEY = "allowedEndpointHosts";
    static final String KEY_SHARED_ACROSS_REALMS_KEY = "keySharedAcrossRealms";
    static final String INSECURE_HTTP_HOSTS_KEY = "insecureHttpHosts";

    /** What {@code kc.sh} shows for the options; the help texts are the user documentation. */
    static final List<ProviderConfigProperty> CONFIG_METADATA = ProviderConfigurationBuilder.create()
            .property().name(ALLOWED_CREDENTIALS_MODES_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("default,access-key,assume-role")
                .helpText("Credentials modes realm administrators may choose for aws-kms keys, separated by "
                        + "commas: default, access-key, assume-role.")
                .add()
            .property().name(AMBIENT_IDENTITY_REALMS_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("master")
                .helpText("Realms whose aws-kms keys may use the Keycloak server's own AWS identity (instance or "
                        + "task role, IRSA, environment): credentials mode 'default', and 'assume-role' without an "
                        + "access key. Realm names separated by commas, * as a wildcard; * alone allows every realm.")
                .add()
            .property().name(ALLOWED_KEY_IDS_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("*")
                .helpText("Patterns of the KMS keys realms may use, separated by commas: a key is allowed if its "
                        + "'KMS key' field as entered or its resolved key ARN matches one. * matches any characters; "
                        + "${realm} is the realm's name, e.g. alias/keycloak-${realm}-* (Keycloak's configuration "
                        + "expands ${...}: write it $${realm} on the command line, in keycloak.conf and in "
                        + "environment variables).")
                .add()
            .property().name(ALLOWED_ROLE_ARNS_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("*")
                .helpText("Patterns of the IAM roles credentials mode 'assume-role' may assume, separated by commas "
                        + "(* and ${realm} as for allowed-key-ids).")
                .add()
            .property().name(ALLOWED_ENDPOINT_HOSTS_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("*")
                .helpText("Patterns of the hosts 'Endpoint URL' and 'STS endpoint URL' may name, separated by "
                        + "commas, e.g. *.amazonaws.com (* and ${realm} as for allowed-key-ids; case-insensitive). "
                        + "Empty URLs use AWS's regional endpoints and are always allowed.")
                .add()
            .property().name(KEY_SHARED_ACROSS_REALMS_KEY).type(ProviderConfigProperty.BOOLEAN_TYPE)
                .defaultValue(false)
                .helpText("Whether one KMS key may back aws-kms keys of more than one realm. When false, a realm "
                        + "cannot save a key that a provider of another realm stores.")
                .add()
            .property().name(INSECURE_HTTP_HOSTS_KEY).type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue("")
                .helpText("Hosts that 'Endpoint URL' and 'STS endpoint URL' may reach over plain http://, separated "
                        + "by commas (* as a wildcard), e.g. a KMS emulator in a private network. Loopback addresses "
                        + "(127.0.0.0/8, ::1, localhost) are always allowed; any other http:// URL is refused.")
                .add()
            .build();

    /** No option set: the native defaults. */
    static final SigningPolicyOptions NONE = new SigningPolicyOptions(new LinkedHashMap<>());

    /** The options the operator set, by option name, as written. */
    private final Map<String, String> options;

    private SigningPolicyOptions(Map<String, String> options) {
        this.options = Collections.unmodifiableMap(options);
    }

    /**
     * The options set on the server, as text; an option that is not set is left to the native default.
     *
     * @throws IllegalArgumentException for an option that is set but whose value Keycloak could not
     *                                  read: its configuration expands {@code ${…}} and drops a value
     *                                  whose expression it cannot expand, such as an unescaped
     *                                  {@code ${realm}}; taking the default instead would allow
     *                                  everything the operator meant to restrict
     */
    static SigningPolicyOptions from(Config.Scope config) {
        Set<String> named = propertyNames(config);
        Map<String, String> set = new LinkedHashMap<>();
        for (ProviderConfigProperty option : CONFIG_METADATA) {
            String value = config.get(option.getName());
            if (value != null) {
                set.put(option.getName(), value);
            } else if (named.stream().anyMatch(name -> name.endsWith("-" + dashed(option.getName())))) {
                throw new IllegalArgumentException("Option " + commandLineName(option.getName()) + " is set, but "
                        + "Keycloak could not read its value: Keycloak's configuration expands ${...} expressions, so "
                        + "write the placeholder ${realm} as $${realm}");
            }
        }
        return new SigningPolicyOptions(set);
    }

    /** The names of the options Keycloak has for this provider, unexpanded; empty if it cannot tell. */
    private static Set<String> propertyNames(Config.Scope config) {
        try {
            Set<String> names = config.getPropertyNames();
            return names == null ? Set.of() : names;
        } catch (RuntimeException e) {
            return Set.of();
        }
    }

    /** {@code allowedKeyIds} → {@code allowed-key-ids}, as Keycloak spells options. */
    static String dashed(String name) {
        return name.replaceAll("([A-Z])", "-$1").toLowerCase(Locale.ROOT);
    }

    /** {@code allowedKeyIds} → {@code --spi-keys--aws-kms--allowed-key-ids}. */
    static String commandLineName(String name) {
        return "--spi-keys--" + KmsKeyProviderFactory.ID + "--" + dashed(name);
    }

    /** Whether the operator set no option at all. */
    boolean isEmpty() {
        return options.isEmpty();
    }

    /** The argument of {@code Native.configureSigningPolicy}. */
    String toNativeJson() {
        try {
            return JsonSerialization.writeValueAsString(options);
        } catch (IOException e) {
            // Cannot happen for a map of strings.
            throw new IllegalStateException("Could not encode the aws-kms server options as JSON", e);
        }
    }

    /** The startup error for options the native library refused; its message names the option. */
    IllegalArgumentException refused(NativeException e) {
        return new IllegalArgumentException("Invalid aws-kms server option: " + e.detail(), e);
    }

    @Override
    public String toString() {
        return "SigningPolicyOptions" + options;
    }
}
