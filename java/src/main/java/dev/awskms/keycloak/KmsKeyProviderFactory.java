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
    public static final String ASSUME_ROLE_CREDENTIALS_MODE = "assume-role";
    public static final String CREDENTIALS_MODE_KEY = "credentialsMode";
    public static final ProviderConfigProperty CREDENTIALS_MODE_PROPERTY = new ProviderConfigProperty(CREDENTIALS_MODE_KEY,
            "Credentials mode",
            "How Keycloak authenticates to KMS. 'default' uses the AWS default credential chain of the Keycloak "
                    + "server (environment variables, web identity, container or EC2 instance role) and stores no "
                    + "secret in Keycloak; prefer it. 'access-key' uses the access key entered below. 'assume-role' "
                    + "assumes the IAM role entered below through STS, as the access key entered below if there is "
                    + "one, else as the default credential chain.",
            ProviderConfigProperty.LIST_TYPE, DEFAULT_CREDENTIALS_MODE,
            DEFAULT_CREDENTIALS_MODE, ACCESS_KEY_CREDENTIALS_MODE, ASSUME_ROLE_CREDENTIALS_MODE);

    public static final String ACCESS_KEY_ID_KEY = "accessKeyId";
    public static final ProviderConfigProperty ACCESS_KEY_ID_PROPERTY = new ProviderConfigProperty(ACCESS_KEY_ID_KEY,
            "Access key ID",
            "With credentials mode 'access-key' (required): the IAM access key ID (AKIA...); its identity needs "
                    + "kms:DescribeKey, kms:GetPublicKey and kms:Sign on the key. With 'assume-role' (optional): the "
                    + "access key that assumes the role; leave empty to assume it with the default credential chain.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String SECRET_ACCESS_KEY_KEY = "secretAccessKey";
    public static final ProviderConfigProperty SECRET_ACCESS_KEY_PROPERTY = new ProviderConfigProperty(SECRET_ACCESS_KEY_KEY,
            "Secret access key",
            "The secret of that access key. It is stored in Keycloak's database and masked in the admin console; "
                    + "enter ${vault.NAME} to read it from Keycloak's vault instead.",
            ProviderConfigProperty.PASSWORD, null, true);

    public static final String ROLE_ARN_KEY = "roleArn";
    public static final ProviderConfigProperty ROLE_ARN_PROPERTY = new ProviderConfigProperty(ROLE_ARN_KEY,
            "Role ARN",
            "With credentials mode 'assume-role' (required): the IAM role to assume, e.g. "
                    + "arn:aws:iam::111122223333:role/keycloak-signer. The role needs kms:DescribeKey, "
                    + "kms:GetPublicKey and kms:Sign on the key, and its trust policy must allow the identity that "
                    + "assumes it.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String EXTERNAL_ID_KEY = "externalId";
    public static final ProviderConfigProperty EXTERNAL_ID_PROPERTY = new ProviderConfigProperty(EXTERNAL_ID_KEY,
            "External ID",
            "With credentials mode 'assume-role' (optional): the external ID the role's trust policy requires "
                    + "(sts:ExternalId). Masked in the admin console; enter ${vault.NAME} to read it from Keycloak's "
                    + "vault.",
            ProviderConfigProperty.PASSWORD, null, true);

    public static final String DEFAULT_ROLE_SESSION_NAME = "keycloak-aws-kms";
    public static final String ROLE_SESSION_NAME_KEY = "roleSessionName";
    public static final ProviderConfigProperty ROLE_SESSION_NAME_PROPERTY = new ProviderConfigProperty(ROLE_SESSION_NAME_KEY,
            "Role session name",
            "With credentials mode 'assume-role': the session name STS records, shown in CloudTrail as who "
                    + "signed. 2 to 64 letters, digits or +=,.@-_; empty means " + DEFAULT_ROLE_SESSION_NAME + ".",
            ProviderConfigProperty.STRING_TYPE, DEFAULT_ROLE_SESSION_NAME);

    public static final String STS_ENDPOINT_URL_KEY = "stsEndpointUrl";
    public static final ProviderConfigProperty STS_ENDPOINT_URL_PROPERTY = new ProviderConfigProperty(STS_ENDPOINT_URL_KEY,
            "STS endpoint URL",
            "With credentials mode 'assume-role' (optional): call STS at this URL, e.g. a VPC endpoint or "
                    + "https://sts.eu-west-1.amazonaws.com. Leave empty to use the standard STS endpoint of the region.",
            ProviderConfigProperty.STRING_TYPE, null);

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

    public static final String CERTIFICATE_KEY = Attributes.CERTIFICATE_KEY;
    /** Keycloak's standard certificate upload (File, "X509 Certificate"), with help text for a KMS key. */
    public static final ProviderConfigProperty CERTIFICATE_PROPERTY = new ProviderConfigProperty(CERTIFICATE_KEY,
            Attributes.CERTIFICATE_PROPERTY.getLabel(),
            "Optional. Upload the PEM certificate of this KMS key (its public key must be the KMS key's), or leave "
                    + "empty to have one minted and signed by the KMS key, with the realm name as subject. A minted "
                    + "certificate is replaced by a new one every time you save.",
            Attributes.CERTIFICATE_PROPERTY.getType(), null);

    // Written by validation from KMS, never taken from the request. Declared read-only: Keycloak's
    // admin GET and export drop config keys a factory does not declare (StripSecretsUtils).

    /** The resolved key ARN (an alias is resolved at save time). */
    public static final String KEY_ARN_KEY = "keyArn";
    public static final ProviderConfigProperty KEY_ARN_PROPERTY = writtenOnSave(KEY_ARN_KEY, "Key ARN",
            "Written when you save: the ARN of the KMS key that signs. An alias in 'KMS key' is resolved to this "
                    + "key when you save; save again after re-pointing the alias.");
    /** The KMS key spec, e.g. {@code RSA_2048}. */
    public static final String KEY_SPEC_KEY = "keySpec";
    public static final ProviderConfigProperty KEY_SPEC_PROPERTY = writtenOnSave(KEY_SPEC_KEY, "Key spec",
            "Written when you save: the KMS key spec, e.g. RSA_2048 or ECC_NIST_P256.");
    /** Base64url SHA-256 of the SPKI DER, as Keycloak's {@code KeyUtils.createKeyId}. */
    public static final String KID_KEY = Attributes.KID_KEY;
    public static final ProviderConfigProperty KID_PROPERTY = writtenOnSave(KID_KEY, "Key ID (kid)",
            "Written when you save: the kid of the key in tokens and in the realm's JWKS, the SHA-256 of the public key.");
    /** Base64 of the SPKI DER from KMS {@code GetPublicKey}. */
    public static final String PUBLIC_KEY_KEY = "publicKey";
    public static final ProviderConfigProperty PUBLIC_KEY_PROPERTY = writtenOnSave(PUBLIC_KEY_KEY, "Public key",
            "Written when you save: the public key of the KMS key (base64 SubjectPublicKeyInfo), as KMS returned it.");
    /**
     * PEM of the certificate minted and signed by the KMS key when none was uploaded. Kept apart
     * from {@link #CERTIFICATE_KEY} and not declared, so that the form stays empty and the next save
     * mints afresh. (Not declared, it is also left out of the admin GET and of exports; the key
     * carries it all the same, and an import mints a new one.)
     */
    public static final String MINTED_CERTIFICATE_KEY = "mintedCertificate";

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
            .property(ROLE_ARN_PROPERTY)
            .property(EXTERNAL_ID_PROPERTY)
            .property(ROLE_SESSION_NAME_PROPERTY)
            .property(STS_ENDPOINT_URL_PROPERTY)
            .property(ALGORITHM_PROPERTY)
            .property(CERTIFICATE_PROPERTY)
            .property(KEY_ARN_PROPERTY)
            .property(KEY_SPEC_PROPERTY)
            .property(KID_PROPERTY)
            .property(PUBLIC_KEY_PROPERTY)
            .build();

    private static ProviderConfigProperty writtenOnSave(String name, String label, String helpText) {
        ProviderConfigProperty property = new ProviderConfigProperty(name, label, helpText,
                ProviderConfigProperty.STRING_TYPE, null);
        property.setReadOnly(true);
        return property;
    }

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
                + "key's ARN and public key from KMS, signs once to check that the credentials may sign, and stores "
                + "them with the provider, together with the uploaded certificate or one minted by the KMS key. "
                + "Every signature is a KMS "
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
     *
     * <p>Vault references in the secret fields are resolved here, once per built key, through
     * {@code session}; the resolved values go into the key's {@link KmsPrivateKey} only. If one
     * does not resolve, the key is complete but cannot sign, and it is not kept, so that a later
     * request tries the vault again.
     */
    @Override
    public KmsKeyProvider create(KeycloakSession session, ComponentModel model) {
        KeyWrapper key;
        try {
            key = cachedOrBuiltKey(session, model);
        } catch (RuntimeException e) {
            LOG.errorf(e, "aws-kms key provider %s: could not build its key; signing with it will fail", model.getId());
            key = StoredSigningKey.unusable(model, "the key could not be built (" + e.getClass().getSimpleName()
                    + "); see the server log");
        }
        return new KmsKeyProvider(key);
    }

    private static KeyWrapper cachedOrBuiltKey(KeycloakSession session, ComponentModel model) {
        CachedKey cached = model.getNote(KEY_NOTE);
        if (cached != null && cached.config.equals(model.getConfig())) {
            return cached.key;
        }
        ResolvedSecrets secrets = ResolvedSecrets.resolve(session, model);
        secrets.problem().ifPresent(problem -> LOG.warnf("aws-kms key provider %s (%s): %s. Signing with it fails "
                + "until the vault has that secret.", model.getId(), model.getName(), problem));
        KeyWrapper key;
        try {
            key = StoredSigningKey.fromComponent(model, secrets);
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            LOG.warnf("aws-kms key provider %s (%s) has no usable stored key: %s. Signing with it fails until "
                    + "the provider is saved again.", model.getId(), model.getName(), e.getMessage());
            key = StoredSigningKey.unusable(model, e.getMessage()
                    + "; save the provider again so that its key is read from KMS");
        }
        if (secrets.problem().isEmpty()) {
            MultivaluedHashMap<String, String> snapshot = new MultivaluedHashMap<>();
            snapshot.addAll(model.getConfig());
            model.setNote(KEY_NOTE, new CachedKey(snapshot, key));
        }
        return key;
    }

    /**
     * Checks the fields, then asks KMS (through the native library) for the key and writes
     * {@code keyArn}, {@code keySpec}, {@code publicKey}, {@code kid} and the certificate into the
     * model, which Keycloak then saves: an uploaded certificate (checked against the key) is kept
     * in {@code certificate}, re-encoded; otherwise the one minted by the KMS key goes to
     * {@code mintedCertificate}. On any failure the model is left unchanged and the save is
     * refused with a message for the administrator.
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
                .checkSingle(ACCESS_KEY_ID_PROPERTY, false)
                .checkSingle(SECRET_ACCESS_KEY_PROPERTY, false)
                .checkSingle(ROLE_ARN_PROPERTY, false)
                .checkSingle(EXTERNAL_ID_PROPERTY, false)
                .checkSingle(ROLE_SESSION_NAME_PROPERTY, false)
                .checkSingle(STS_ENDPOINT_URL_PROPERTY, false)
                .checkList(ALGORITHM_PROPERTY, false)
                .checkSingle(CERTIFICATE_PROPERTY, false);
        requireNotBlank(model, KMS_KEY_ID_PROPERTY);
        String credentialsMode = model.get(CREDENTIALS_MODE_KEY, DEFAULT_CREDENTIALS_MODE);
        if (ACCESS_KEY_CREDENTIALS_MODE.equals(credentialsMode)) {
            requireNotBlank(model, ACCESS_KEY_ID_PROPERTY);
            requireNotBlank(model, SECRET_ACCESS_KEY_PROPERTY);
        } else if (ASSUME_ROLE_CREDENTIALS_MODE.equals(credentialsMode)) {
            requireNotBlank(model, ROLE_ARN_PROPERTY);
        }
        ResolvedSecrets secrets = ResolvedSecrets.resolve(session, model);
        if (secrets.problem().isPresent()) {
            throw validationError(secrets.problem().get() + ".", secrets, null);
        }

        String description;
        try {
            NativeLibraryLoader.ensureLoaded();
            description = NativeBridge.describeSigningKey(NativeConfigJson.forValidation(model, secrets,
                    realm == null ? null : realm.getName()));
        } catch (NativeException e) {
            if (e.code() == NativeErrorCode.INTERNAL || e.code() == NativeErrorCode.PANIC) {
                LOG.errorf("aws-kms key provider '%s': KMS key check failed with %s", model.getName(), e.getMessage());
            } else {
                LOG.debugf("aws-kms key provider '%s': KMS key check failed with %s", model.getName(), e.getMessage());
            }
            throw validationError(adminMessage(e, credentialsMode), secrets, e);
        } catch (NativeLibraryLoadException e) {
            LOG.error("aws-kms: the native library could not be loaded", e);
            throw validationError("The AWS KMS key provider is not usable on this server: its native library "
                    + "could not be loaded (see the server log). " + e.getMessage(), secrets, e);
        }

        String keyArn;
        String keySpec;
        String publicKey;
        String kid;
        String certificate;
        boolean certificateMinted;
        try {
            JsonNode described = JsonSerialization.mapper.readTree(description);
            keyArn = requiredText(described, KEY_ARN_KEY);
            keySpec = requiredText(described, KEY_SPEC_KEY);
            publicKey = requiredText(described, PUBLIC_KEY_KEY);
            kid = requiredText(described, KID_KEY);
            certificate = requiredText(described, CERTIFICATE_KEY);
            JsonNode minted = described.get("certificateMinted");
            if (minted == null || !minted.isBoolean()) {
                throw new IllegalArgumentException("field 'certificateMinted' is missing");
            }
            certificateMinted = minted.booleanValue();
        } catch (IOException | IllegalArgumentException e) {
            LOG.errorf("aws-kms key provider '%s': unexpected key description from the native library: %s",
                    model.getName(), e.getMessage());
            throw validationError("Internal error in the AWS KMS key provider: the key description could not "
                    + "be read; see the server log", secrets, null);
        }

        // The key must also be buildable from what is about to be stored; otherwise every request
        // would get an unusable key.
        ComponentModel candidate = new ComponentModel(model);
        candidate.put(KEY_ARN_KEY, keyArn);
        candidate.put(KEY_SPEC_KEY, keySpec);
        candidate.put(PUBLIC_KEY_KEY, publicKey);
        candidate.put(KID_KEY, kid);
        storeCertificate(candidate, certificate, certificateMinted);
        KeyWrapper built;
        try {
            built = StoredSigningKey.fromComponent(candidate, secrets);
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            throw validationError("KMS key '" + model.get(KMS_KEY_ID_KEY) + "' (" + keySpec
                    + ") cannot be used with " + model.get(ALGORITHM_KEY, Algorithm.RS256) + ": " + e.getMessage(),
                    secrets, null);
        }
        if (built.getCertificate() == null) {
            LOG.errorf("aws-kms key provider '%s': the certificate from the native library is unusable (see the "
                    + "warning above)", model.getName());
            throw validationError("Internal error in the AWS KMS key provider: the checked certificate could not "
                    + "be read back; see the server log", secrets, null);
        }

        model.put(KEY_ARN_KEY, keyArn);
        model.put(KEY_SPEC_KEY, keySpec);
        model.put(PUBLIC_KEY_KEY, publicKey);
        model.put(KID_KEY, kid);
        storeCertificate(model, certificate, certificateMinted);
        model.removeNote(KEY_NOTE);
    }

    /**
     * An uploaded certificate stays in the form field, re-encoded; a minted one is kept out of it,
     * so that the form shows no certificate and the next save mints a fresh one (for instance for
     * the key an alias points to by then).
     */
    private static void storeCertificate(ComponentModel model, String pem, boolean minted) {
        if (minted) {
            model.getConfig().remove(CERTIFICATE_KEY);
            model.put(MINTED_CERTIFICATE_KEY, pem);
        } else {
            model.put(CERTIFICATE_KEY, pem);
            model.getConfig().remove(MINTED_CERTIFICATE_KEY);
        }
    }

    /**
     * The native message already names the key, the region and the cause in an administrator's
     * words; this adds what to do about it, per code. The switch has no default, so a new code is a
     * compile error here until it has its hint.
     */
    static String adminMessage(NativeException e, String credentialsMode) {
        boolean assumeRole = ASSUME_ROLE_CREDENTIALS_MODE.equals(credentialsMode);
        String hint = switch (e.code()) {
            case INVALID_CONFIGURATION, KEY_NOT_FOUND, KEY_DISABLED, KEY_INVALID_STATE, KEY_USAGE_MISMATCH,
                    KEY_SPEC_MISMATCH, KMS_REJECTED, INVALID_SIGNATURE -> "";
            case INVALID_CERTIFICATE -> " Upload a PEM certificate (-----BEGIN CERTIFICATE-----) of this KMS key, "
                    + "or clear the field to have one minted.";
            case CERTIFICATE_MISMATCH -> " Upload the certificate of this KMS key, or clear the field to have one "
                    + "minted.";
            // The public key cache codes never come from key validation; seeing one here is a bug too.
            case INVALID_ARGUMENT, INVALID_HANDLE, INTERNAL, PANIC, PUBLIC_KEYS_UNAVAILABLE, JWKS_FETCH_FAILED,
                    JWKS_INVALID -> " This is a bug in the AWS KMS key provider; see the server log.";
            case CREDENTIALS_UNAVAILABLE -> assumeRole
                    ? " Check 'Role ARN' and 'External ID', and that the role's trust policy lets the identity that "
                            + "assumes it (the access key entered here, else the Keycloak server's default "
                            + "credentials) call sts:AssumeRole."
                    : " With credentials mode 'default' the Keycloak server needs an AWS identity (environment "
                            + "variables, web identity, container or instance role).";
            case ACCESS_DENIED -> (assumeRole ? " Check the role's permissions" : " Check the credentials")
                    + ": they need kms:DescribeKey, kms:GetPublicKey and kms:Sign on the key.";
            case THROTTLED, KMS_UNAVAILABLE -> " Try again shortly.";
            case TIMEOUT, NETWORK -> " Check 'Region', 'Endpoint URL' and the network path to KMS.";
        };
        String detail = e.detail();
        return detail + (detail.endsWith(".") ? "" : ".") + hint + " [" + e.wireCode() + "]";
    }

    /**
     * A validation error for the admin console. Keycloak formats the message with
     * {@link java.text.MessageFormat}, so quotes and braces are escaped; every secret value (as
     * stored and as resolved from the vault) is removed in case any part of the message ever
     * echoes it.
     */
    private static ComponentValidationException validationError(String message, ResolvedSecrets secrets,
            Throwable cause) {
        String safe = message;
        for (String secret : secrets.secretValues()) {
            safe = withoutSecret(safe, secret);
        }
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
