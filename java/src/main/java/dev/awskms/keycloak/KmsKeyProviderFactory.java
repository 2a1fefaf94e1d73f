package dev.awskms.keycloak;

import java.io.IOException;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.common.util.MultivaluedHashMap;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.Attributes;
import org.keycloak.keys.KeyProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ConfigurationValidationHelper;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;
import org.keycloak.util.JsonSerialization;

/**
 * Key provider {@value #ID}: realm signing keys whose private half stays in AWS KMS.
 *
 * <p>Saving the component ({@link #validateConfiguration}) asks KMS for the key and stores its ARN,
 * spec, public key and kid with the component. Serving requests ({@link #create}) only reads that
 * stored material; the private key is a {@link KmsPrivateKey} handle that {@link KmsJcaProvider}
 * signs with.
 *
 * <p>Keycloak instantiates factories while it builds the server, so nothing here loads native
 * code before {@link #init} (the JCA provider) or the first save or signature (the library).
 */
public final class KmsKeyProviderFactory implements KeyProviderFactory<KmsKeyProvider> {

    public static final String ID = "aws-kms";

    private static final Logger LOG = Logger.getLogger(KmsKeyProviderFactory.class);

    // Entered by the administrator.

    public static final String KMS_KEY_ID_KEY = "kmsKeyId";
    public static final ProviderConfigProperty KMS_KEY_ID_PROPERTY = new ProviderConfigProperty(KMS_KEY_ID_KEY,
            "KMS key",
            "The AWS KMS key that signs: a key ID (1234abcd-12ab-34cd-56ef-1234567890ab), key ARN, alias name "
                    + "(alias/my-signing-key) or alias ARN. It must be an asymmetric key with key usage SIGN_VERIFY. "
                    + "An alias is resolved when you save; the provider keeps using that key until you save again.",
            ProviderConfigProperty.STRING_TYPE, null, false, true);

    public static final String REGION_KEY = "region";
    public static final ProviderConfigProperty REGION_PROPERTY = new ProviderConfigProperty(REGION_KEY,
            "Region",
            "The AWS region of the key, e.g. eu-west-1. Leave empty if 'KMS key' is an ARN: the ARN names the region.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String ENDPOINT_URL_KEY = "endpointUrl";
    public static final ProviderConfigProperty ENDPOINT_URL_PROPERTY = new ProviderConfigProperty(ENDPOINT_URL_KEY,
            "Endpoint URL",
            "Optional. Call KMS at this URL instead of the regional endpoint, e.g. a VPC endpoint or "
                    + "https://kms-fips.us-east-1.amazonaws.com. Leave empty to use the standard endpoint of the region.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String DEFAULT_CREDENTIALS_MODE = "default";
    public static final String ACCESS_KEY_CREDENTIALS_MODE = "access-key";
    public static final String CREDENTIALS_MODE_KEY = "credentialsMode";
    public static final ProviderConfigProperty CREDENTIALS_MODE_PROPERTY = new ProviderConfigProperty(CREDENTIALS_MODE_KEY,
            "Credentials mode",
            "How Keycloak authenticates to KMS. 'default' uses the AWS default credential chain of the Keycloak "
                    + "server (environment variables, web identity, container or EC2 instance role) and stores no "
                    + "secret in Keycloak; prefer it. 'access-key' uses the access key entered below.",
            ProviderConfigProperty.LIST_TYPE, DEFAULT_CREDENTIALS_MODE,
            DEFAULT_CREDENTIALS_MODE, ACCESS_KEY_CREDENTIALS_MODE);

    public static final String ACCESS_KEY_ID_KEY = "accessKeyId";
    public static final ProviderConfigProperty ACCESS_KEY_ID_PROPERTY = new ProviderConfigProperty(ACCESS_KEY_ID_KEY,
            "Access key ID",
            "With credentials mode 'access-key': the IAM access key ID (AKIA...). Its identity needs kms:DescribeKey, "
                    + "kms:GetPublicKey and kms:Sign on the key.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String SECRET_ACCESS_KEY_KEY = "secretAccessKey";
    public static final ProviderConfigProperty SECRET_ACCESS_KEY_PROPERTY = new ProviderConfigProperty(SECRET_ACCESS_KEY_KEY,
            "Secret access key",
            "With credentials mode 'access-key': the secret of that access key. It is stored in Keycloak's database "
                    + "and masked in the admin console.",
            ProviderConfigProperty.PASSWORD, null, true);

    public static final List<String> ALGORITHMS = List.of(
            Algorithm.RS256, Algorithm.RS384, Algorithm.RS512,
            Algorithm.PS256, Algorithm.PS384, Algorithm.PS512,
            Algorithm.ES256, Algorithm.ES384, Algorithm.ES512);
    public static final String ALGORITHM_KEY = Attributes.ALGORITHM_KEY;
    public static final ProviderConfigProperty ALGORITHM_PROPERTY = new ProviderConfigProperty(ALGORITHM_KEY,
            "Algorithm",
            "The JWS algorithm this key signs with. RS* and PS* need an RSA key (RSA_2048, RSA_3072, RSA_4096); "
                    + "ES256, ES384 and ES512 need an ECC_NIST_P256, ECC_NIST_P384 and ECC_NIST_P521 key.",
            ProviderConfigProperty.LIST_TYPE, Algorithm.RS256, ALGORITHMS.toArray(new String[0]));

    // Written by validation from KMS; not entered, so not shown in the form.

    /** The resolved key ARN (an alias is resolved at save time). */
    public static final String KEY_ARN_KEY = "keyArn";
    /** The KMS key spec, e.g. {@code RSA_2048}. */
    public static final String KEY_SPEC_KEY = "keySpec";
    /** Base64 of the SPKI DER from KMS {@code GetPublicKey}. */
    public static final String PUBLIC_KEY_KEY = "publicKey";
    /** Base64url SHA-256 of the SPKI DER, as Keycloak's {@code KeyUtils.createKeyId}. */
    public static final String KID_KEY = Attributes.KID_KEY;

    private static final List<ProviderConfigProperty> CONFIG_PROPERTIES = ProviderConfigurationBuilder.create()
            .property(Attributes.PRIORITY_PROPERTY)
            .property(Attributes.ENABLED_PROPERTY)
            .property(Attributes.ACTIVE_PROPERTY)
            .property(KMS_KEY_ID_PROPERTY)
            .property(REGION_PROPERTY)
            .property(ENDPOINT_URL_PROPERTY)
            .property(CREDENTIALS_MODE_PROPERTY)
            .property(ACCESS_KEY_ID_PROPERTY)
            .property(SECRET_ACCESS_KEY_PROPERTY)
            .property(ALGORITHM_PROPERTY)
            .build();

    /** Component note holding the built key, so requests do not decode the public key again. */
    static final String KEY_NOTE = KmsKeyProviderFactory.class.getName() + ".key";

    /** The key built from one exact configuration; a note is reused only for that configuration. */
    private static final class CachedKey {
        final Map<String, List<String>> config;
        final KeyWrapper key;

        CachedKey(Map<String, List<String>> config, KeyWrapper key) {
            this.config = config;
            this.key = key;
        }
    }

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public String getHelpText() {
        return "Signs tokens with an asymmetric key in AWS KMS; the private key never leaves KMS. Saving reads the "
                + "key's ARN and public key from KMS and stores them with the provider. Every signature is a KMS "
                + "call: while KMS cannot be reached, requests that need this key fail instead of falling back to a "
                + "local key.";
    }

    @Override
    public List<ProviderConfigProperty> getConfigProperties() {
        return CONFIG_PROPERTIES;
    }

    @Override
    public void init(Config.Scope config) {
        KmsJcaProvider.register();
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
    }

    @Override
    public void close() {
    }

    /**
     * Never falls back to a software key: a realm that relies on KMS must not quietly start signing
     * with a key KMS never saw.
     */
    @Override
    public boolean createFallbackKeys(KeycloakSession session, KeyUse keyUse, String algorithm) {
        return false;
    }

    /**
     * Builds the provider from stored material. Never throws and never calls KMS or native code:
     * if {@code create} threw, Keycloak would skip the provider and could generate a software
     * fallback key for the algorithm. A component whose stored material is missing or corrupt
     * therefore still yields its key, with the configured status, but without a public key (so it
     * is not published) and with a private key whose every signature fails with the reason. The
     * realm then fails loudly on signing until an administrator saves the provider again.
     */
    @Override
    public KmsKeyProvider create(KeycloakSession session, ComponentModel model) {
        KeyWrapper key;
        try {
            key = cachedOrBuiltKey(model);
        } catch (RuntimeException e) {
            LOG.errorf(e, "aws-kms key provider %s: could not build its key; signing with it will fail", model.getId());
            key = StoredSigningKey.unusable(model, "the key could not be built (" + e.getClass().getSimpleName()
                    + "); see the server log");
        }
        return new KmsKeyProvider(key);
    }

    private static KeyWrapper cachedOrBuiltKey(ComponentModel model) {
        CachedKey cached = model.getNote(KEY_NOTE);
        if (cached != null && cached.config.equals(model.getConfig())) {
            return cached.key;
        }
        KeyWrapper key;
        try {
            key = StoredSigningKey.fromComponent(model);
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            LOG.warnf("aws-kms key provider %s (%s) has no usable stored key: %s. Signing with it fails until "
                    + "the provider is saved again.", model.getId(), model.getName(), e.getMessage());
            key = StoredSigningKey.unusable(model, e.getMessage()
                    + "; save the provider again so that its key is read from KMS");
        }
        MultivaluedHashMap<String, String> snapshot = new MultivaluedHashMap<>();
        snapshot.addAll(model.getConfig());
        model.setNote(KEY_NOTE, new CachedKey(snapshot, key));
        return key;
    }

    /**
     * Checks the fields, then asks KMS (through the native library) for the key and writes
     * {@code keyArn}, {@code keySpec}, {@code publicKey} and {@code kid} into the model, which
     * Keycloak then saves. On any failure the model is left unchanged and the save is refused
     * with a message for the administrator.
     */
    @Override
    public void validateConfiguration(KeycloakSession session, RealmModel realm, ComponentModel model)
            throws ComponentValidationException {
        ConfigurationValidationHelper.check(model)
                .checkLong(Attributes.PRIORITY_PROPERTY, false)
                .checkBoolean(Attributes.ENABLED_PROPERTY, false)
                .checkBoolean(Attributes.ACTIVE_PROPERTY, false)
                .checkSingle(KMS_KEY_ID_PROPERTY, true)
                .checkSingle(REGION_PROPERTY, false)
                .checkSingle(ENDPOINT_URL_PROPERTY, false)
                .checkList(CREDENTIALS_MODE_PROPERTY, false)
                .checkList(ALGORITHM_PROPERTY, false);
        requireNotBlank(model, KMS_KEY_ID_PROPERTY);
        if (ACCESS_KEY_CREDENTIALS_MODE.equals(model.get(CREDENTIALS_MODE_KEY))) {
            ConfigurationValidationHelper.check(model)
                    .checkSingle(ACCESS_KEY_ID_PROPERTY, true)
                    .checkSingle(SECRET_ACCESS_KEY_PROPERTY, true);
            requireNotBlank(model, ACCESS_KEY_ID_PROPERTY);
            requireNotBlank(model, SECRET_ACCESS_KEY_PROPERTY);
        }

        String description;
        try {
            NativeLibraryLoader.ensureLoaded();
            description = NativeBridge.describeSigningKey(NativeConfigJson.forValidation(model));
        } catch (NativeException e) {
            if (e.code() == NativeErrorCode.INTERNAL || e.code() == NativeErrorCode.PANIC) {
                LOG.errorf("aws-kms key provider %s: KMS key check failed with %s", model.getId(), e.getMessage());
            } else {
                LOG.debugf("aws-kms key provider %s: KMS key check failed with %s", model.getId(), e.getMessage());
            }
            throw validationError(adminMessage(e), model, e);
        } catch (NativeLibraryLoadException e) {
            LOG.error("aws-kms: the native library could not be loaded", e);
            throw validationError("The AWS KMS key provider is not usable on this server: its native library "
                    + "could not be loaded (see the server log). " + e.getMessage(), model, e);
        }

        String keyArn;
        String keySpec;
        String publicKey;
        String kid;
        try {
            JsonNode described = JsonSerialization.mapper.readTree(description);
            keyArn = requiredText(described, KEY_ARN_KEY);
            keySpec = requiredText(described, KEY_SPEC_KEY);
            publicKey = requiredText(described, PUBLIC_KEY_KEY);
            kid = requiredText(described, KID_KEY);
        } catch (IOException | IllegalArgumentException e) {
            LOG.errorf("aws-kms key provider %s: unexpected key description from the native library: %s",
                    model.getId(), e.getMessage());
            throw validationError("Internal error in the AWS KMS key provider: the key description could not "
                    + "be read; see the server log", model, null);
        }

        // The key must also be buildable from what is about to be stored; otherwise every request
        // would get an unusable key.
        ComponentModel candidate = new ComponentModel(model);
        candidate.put(KEY_ARN_KEY, keyArn);
        candidate.put(KEY_SPEC_KEY, keySpec);
        candidate.put(PUBLIC_KEY_KEY, publicKey);
        candidate.put(KID_KEY, kid);
        try {
            StoredSigningKey.fromComponent(candidate);
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            throw validationError("KMS key '" + model.get(KMS_KEY_ID_KEY) + "' (" + keySpec
                    + ") cannot be used with " + model.get(ALGORITHM_KEY, Algorithm.RS256) + ": " + e.getMessage(),
                    model, null);
        }

        model.put(KEY_ARN_KEY, keyArn);
        model.put(KEY_SPEC_KEY, keySpec);
        model.put(PUBLIC_KEY_KEY, publicKey);
        model.put(KID_KEY, kid);
        model.removeNote(KEY_NOTE);
    }

    /**
     * The native message already names the key, the region and the cause in an administrator's
     * words; this adds what to do about it, per code. The switch has no default, so a new code is a
     * compile error here until it has its hint.
     */
    private static String adminMessage(NativeException e) {
        String hint = switch (e.code()) {
            case INVALID_CONFIGURATION, KEY_NOT_FOUND, KEY_DISABLED, KEY_INVALID_STATE, KEY_USAGE_MISMATCH,
                    KEY_SPEC_MISMATCH, KMS_REJECTED, INVALID_SIGNATURE -> "";
            case INVALID_ARGUMENT, INVALID_HANDLE, INTERNAL, PANIC -> " This is a bug in the AWS KMS key provider; "
                    + "see the server log.";
            case CREDENTIALS_UNAVAILABLE -> " With credentials mode 'default' the Keycloak server needs an AWS "
                    + "identity (environment variables, web identity, container or instance role).";
            case ACCESS_DENIED -> " Check the credentials: they need kms:DescribeKey, kms:GetPublicKey and kms:Sign "
                    + "on the key.";
            case THROTTLED, KMS_UNAVAILABLE -> " Try again shortly.";
            case TIMEOUT, NETWORK -> " Check 'Region', 'Endpoint URL' and the network path to KMS.";
        };
        return e.detail() + "." + hint + " [" + e.wireCode() + "]";
    }

    /**
     * A validation error for the admin console. Keycloak formats the message with
     * {@link java.text.MessageFormat}, so quotes and braces are escaped; the secret access key is
     * removed in case any part of the message ever echoes it.
     */
    private static ComponentValidationException validationError(String message, ComponentModel model, Throwable cause) {
        String safe = withoutSecret(message, model.get(SECRET_ACCESS_KEY_KEY));
        return new ComponentValidationException(escapeMessageFormat(safe), cause);
    }

    static String withoutSecret(String message, String secret) {
        if (secret == null || secret.isEmpty()) {
            return message;
        }
        return message.replace(secret, "**********");
    }

    /** Escapes text so that {@code MessageFormat.format(escaped)} gives back {@code text}. */
    static String escapeMessageFormat(String text) {
        return text.replace("'", "''").replace("{", "'{'").replace("}", "'}'");
    }

    private static void requireNotBlank(ComponentModel model, ProviderConfigProperty property) {
        String value = model.get(property.getName());
        if (value == null || value.isBlank()) {
            throw new ComponentValidationException("''{0}'' is required", property.getLabel());
        }
    }

    private static String requiredText(JsonNode node, String field) {
        JsonNode value = node.get(field);
        if (value == null || !value.isTextual() || value.asText().isBlank()) {
            throw new IllegalArgumentException("field '" + field + "' is missing");
        }
        return value.asText();
    }
}
