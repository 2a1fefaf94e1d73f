package dev.awskms.keycloak.signing;

import static dev.awskms.keycloak.signing.KmsKeyAttributes.ACCESS_KEY_ID_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ALGORITHM_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ALGORITHM_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ASSUME_ROLE_CREDENTIALS_MODE;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CERTIFICATE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CERTIFICATE_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CREDENTIALS_MODE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CREDENTIALS_MODE_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CURVE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.DEFAULT_CREDENTIALS_MODE;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ENDPOINT_URL_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.EXTERNAL_ID_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_ARN_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_SPEC_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_TYPE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KMS_KEY_ID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KMS_KEY_ID_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.MINTED_CERTIFICATE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.PUBLIC_KEY_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.REGION_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ROLE_ARN_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ROLE_SESSION_NAME_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.SECRET_ACCESS_KEY_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.STS_ENDPOINT_URL_PROPERTY;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeErrorCode;
import dev.awskms.keycloak.internal.NativeException;
import dev.awskms.keycloak.internal.NativeLibraryLoadException;
import org.jboss.logging.Logger;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.Attributes;
import org.keycloak.keys.KeyProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ConfigurationValidationHelper;
import org.keycloak.util.JsonSerialization;

/**
 * Saving an {@code aws-kms} component: the field shapes Keycloak checks for every provider, the
 * vault references, then the native library's check of the key against KMS, whose answer is what
 * gets stored. Which fields a credentials mode requires, and what a valid value is, the native
 * library decides; this class turns its verdict into a message for the administrator.
 */
final class KmsKeyValidation {

    private static final Logger LOG = Logger.getLogger(KmsKeyValidation.class);

    private KmsKeyValidation() {
    }

    /**
     * Checks the fields, then asks KMS (through the native library) for the key and writes
     * {@code keyArn}, {@code keySpec}, {@code keyType}, {@code curve}, {@code publicKey}, {@code kid}
     * and the certificate into the model, which Keycloak then saves: an uploaded certificate
     * (checked against the key) is kept in {@code certificate}, re-encoded; otherwise the one minted
     * by the KMS key goes to {@code mintedCertificate}. The secret fields are then put in their
     * stored form ({@link StoredSecrets}). On any failure the model is left unchanged and the save
     * is refused with a message for the administrator.
     *
     * <p>The native library also holds the save to the server policy (for this realm, against the
     * keys other realms store) and refuses a secret kept from the stored component when a field that
     * decides where it goes has changed.
     */
    static void validate(KeycloakSession session, RealmModel realm, ComponentModel model)
            throws ComponentValidationException {
        // Shapes only (single values, numbers, booleans, list choices); required fields and value
        // rules are the native library's, reported below.
        ConfigurationValidationHelper.check(model)
                .checkLong(Attributes.PRIORITY_PROPERTY, false)
                .checkBoolean(Attributes.ENABLED_PROPERTY, false)
                .checkBoolean(Attributes.ACTIVE_PROPERTY, false)
                .checkSingle(KMS_KEY_ID_PROPERTY, false)
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
        String credentialsMode = model.get(CREDENTIALS_MODE_KEY, DEFAULT_CREDENTIALS_MODE);
        ResolvedSecrets secrets = ResolvedSecrets.resolve(session, model);
        if (secrets.problem().isPresent()) {
            throw validationError(secrets.problem().get() + ".", secrets, null);
        }

        String realmName = realm == null ? null : realm.getName();
        SigningConfigJson.SaveContext context = saveContext(session, realm, model);
        String description;
        try {
            description = Native.describeSigningKey(SigningConfigJson.forValidation(model, secrets, realmName,
                    context));
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

        DescribedKey described;
        try {
            described = DescribedKey.parse(description);
        } catch (IOException | IllegalArgumentException e) {
            LOG.errorf("aws-kms key provider '%s': unexpected key description from the native library: %s",
                    model.getName(), e.getMessage());
            throw validationError("Internal error in the AWS KMS key provider: the key description could not "
                    + "be read; see the server log", secrets, null);
        }

        // The key must also be buildable from what is about to be stored; otherwise every request
        // would get an unusable key.
        ComponentModel candidate = new ComponentModel(model);
        described.storeIn(candidate);
        KeyWrapper built;
        try {
            built = StoredSigningKey.fromComponent(candidate, secrets, realmName);
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            throw validationError("KMS key '" + model.get(KMS_KEY_ID_KEY) + "' (" + described.keySpec
                    + ") cannot be used with " + model.get(ALGORITHM_KEY, Algorithm.RS256) + ": " + e.getMessage(),
                    secrets, null);
        }
        if (built.getCertificate() == null) {
            LOG.errorf("aws-kms key provider '%s': the certificate from the native library is unusable (see the "
                    + "warning above)", model.getName());
            throw validationError("Internal error in the AWS KMS key provider: the checked certificate could not "
                    + "be read back; see the server log", secrets, null);
        }

        described.storeIn(model);
        StoredSecrets.markStored(model);
        model.removeNote(KmsKeyProviderFactory.KEY_NOTE);
    }

    /**
     * What the native library needs to know about this save besides the component: the key ARNs
     * stored by {@code aws-kms} providers of the other realms, and the stored component this save
     * replaces, with the secrets kept from it.
     *
     * <p>During validation {@code realm.getComponent(id)} is still the stored component: Keycloak's
     * {@code RealmAdapter.updateComponent} (JPA) validates before it changes the entity, and the
     * realm it passes is that JPA adapter. Should a realm ever hand back the very model being
     * saved, nothing about the stored destination is known, and every kept secret is refused.
     */
    static SigningConfigJson.SaveContext saveContext(KeycloakSession session, RealmModel realm,
            ComponentModel model) {
        ComponentModel stored = realm == null || model.getId() == null ? null : realm.getComponent(model.getId());
        if (stored != null && !KmsKeyProviderFactory.ID.equals(stored.getProviderId())) {
            stored = null;
        }
        Map<String, String> previous = null;
        if (stored == model) {
            previous = Map.of();
        } else if (stored != null) {
            previous = storedConfig(stored);
        }
        List<String> kept = StoredSecrets.kept(model, stored);
        if (!kept.isEmpty()) {
            LOG.debugf("aws-kms key provider '%s': secrets kept from the stored component: %s", model.getName(), kept);
        }
        return new SigningConfigJson.SaveContext(keysInOtherRealms(session, realm), previous, kept);
    }

    /** The stored component's config values, its secret fields left out. */
    private static Map<String, String> storedConfig(ComponentModel stored) {
        Map<String, String> values = new LinkedHashMap<>();
        stored.getConfig().forEach((key, list) -> {
            boolean secret = ResolvedSecrets.VAULT_PROPERTIES.stream().anyMatch(p -> p.getName().equals(key));
            if (!secret && list != null && list.size() == 1 && list.get(0) != null) {
                values.put(key, list.get(0));
            }
        });
        return values;
    }

    /** The {@code keyArn} of every {@code aws-kms} provider of every realm but {@code realm}. */
    private static List<String> keysInOtherRealms(KeycloakSession session, RealmModel realm) {
        if (session == null || realm == null) {
            return List.of();
        }
        String realmId = realm.getId();
        return session.realms().getRealmsStream()
                .filter(other -> !other.getId().equals(realmId))
                .flatMap(other -> other.getComponentsStream(other.getId(), KeyProvider.class.getName()))
                .filter(component -> KmsKeyProviderFactory.ID.equals(component.getProviderId()))
                .map(component -> component.get(KEY_ARN_KEY))
                .filter(arn -> arn != null && !arn.isBlank())
                .distinct()
                .collect(Collectors.toList());
    }

    /** The native library's description of a key, as validation stores it. */
    private static final class DescribedKey {
        final String keyArn;
        final String keySpec;
        final String keyType;
        /** Null for a key type without curves (RSA). */
        final String curve;
        final String publicKey;
        final String kid;
        final String certificate;
        final boolean certificateMinted;

        private DescribedKey(JsonNode described) {
            keyArn = requiredText(described, KEY_ARN_KEY);
            keySpec = requiredText(described, KEY_SPEC_KEY);
            keyType = requiredText(described, KEY_TYPE_KEY);
            curve = optionalText(described, CURVE_KEY);
            publicKey = requiredText(described, PUBLIC_KEY_KEY);
            kid = requiredText(described, KID_KEY);
            certificate = requiredText(described, CERTIFICATE_KEY);
            JsonNode minted = described.get("certificateMinted");
            if (minted == null || !minted.isBoolean()) {
                throw new IllegalArgumentException("field 'certificateMinted' is missing");
            }
            certificateMinted = minted.booleanValue();
        }

        static DescribedKey parse(String json) throws IOException {
            return new DescribedKey(JsonSerialization.mapper.readTree(json));
        }

        void storeIn(ComponentModel model) {
            model.put(KEY_ARN_KEY, keyArn);
            model.put(KEY_SPEC_KEY, keySpec);
            model.put(KEY_TYPE_KEY, keyType);
            if (curve == null) {
                model.getConfig().remove(CURVE_KEY);
            } else {
                model.put(CURVE_KEY, curve);
            }
            model.put(PUBLIC_KEY_KEY, publicKey);
            model.put(KID_KEY, kid);
            storeCertificate(model, certificate, certificateMinted);
        }
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
            // POLICY_DENIED: the native message names the server option that would allow it.
            case INVALID_CONFIGURATION, KEY_NOT_FOUND, KEY_DISABLED, KEY_INVALID_STATE, KEY_USAGE_MISMATCH,
                    KEY_SPEC_MISMATCH, KMS_REJECTED, INVALID_SIGNATURE, POLICY_DENIED -> "";
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

    private static String requiredText(JsonNode node, String field) {
        String value = optionalText(node, field);
        if (value == null) {
            throw new IllegalArgumentException("field '" + field + "' is missing");
        }
        return value;
    }

    /** The field's text; null when it is absent, JSON null or blank. */
    private static String optionalText(JsonNode node, String field) {
        JsonNode value = node.get(field);
        if (value == null || value.isNull()) {
            return null;
        }
        if (!value.isTextual()) {
            throw new IllegalArgumentException("field '" + field + "' is not text");
        }
        return value.asText().isBlank() ? null : value.asText();
    }
}
