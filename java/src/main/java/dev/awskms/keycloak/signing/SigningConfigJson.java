package dev.awskms.keycloak.signing;

import static dev.awskms.keycloak.signing.KmsKeyAttributes.ACCESS_KEY_CREDENTIALS_MODE;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ACCESS_KEY_ID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ALGORITHM_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ASSUME_ROLE_CREDENTIALS_MODE;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CERTIFICATE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CREDENTIALS_MODE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ENDPOINT_URL_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.EXTERNAL_ID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_ARN_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_SPEC_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KMS_KEY_ID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.PUBLIC_KEY_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.REGION_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ROLE_ARN_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ROLE_SESSION_NAME_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.SECRET_ACCESS_KEY_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.STS_ENDPOINT_URL_KEY;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.keycloak.component.ComponentModel;
import org.keycloak.util.JsonSerialization;

/**
 * The {@code configJson} argument of the signing natives: a flat JSON object of strings with the
 * component config keys of docs/design.md. Only the credential fields of the configured mode
 * are sent, with vault references resolved: the result can contain the secret access key and
 * the external ID. Never log it.
 */
final class SigningConfigJson {

    /** What the administrator enters about the key, whatever the credentials mode. */
    private static final List<String> KEY_KEYS = List.of(
            KMS_KEY_ID_KEY, REGION_KEY, ENDPOINT_URL_KEY, CREDENTIALS_MODE_KEY, ALGORITHM_KEY);

    private static final List<String> ACCESS_KEY_KEYS = List.of(ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY);

    /** With assume-role, the access key pair (if given) is the identity that assumes the role. */
    private static final List<String> ASSUME_ROLE_KEYS = List.of(ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY,
            ROLE_ARN_KEY, EXTERNAL_ID_KEY, ROLE_SESSION_NAME_KEY, STS_ENDPOINT_URL_KEY);

    /** What validation stored from KMS, needed to sign without asking KMS for anything else. */
    private static final List<String> STORED_KEYS = List.of(KEY_ARN_KEY, KEY_SPEC_KEY, PUBLIC_KEY_KEY, KID_KEY);

    /** The common name of a certificate the native library mints; not a component config key. */
    static final String CERTIFICATE_SUBJECT = "certificateSubject";

    /** The realm's name, which the server policy may name; not a component config key. */
    static final String REALM = "realm";

    /**
     * What Keycloak knows about a save besides the component (docs/design.md, {@code describeSigningKey}):
     * the key ARNs that {@code aws-kms} providers of other realms store, and the stored component being
     * replaced, with the secret fields this request kept from it.
     */
    static final class SaveContext {
        /** A new component with no other realm's keys to compare: nothing but the component. */
        static final SaveContext NONE = new SaveContext(List.of(), null, List.of());

        final List<String> keysInOtherRealms;
        /** The stored component's config values, secrets left out; null for a new component. */
        final Map<String, String> previous;
        final List<String> keptSecrets;

        SaveContext(List<String> keysInOtherRealms, Map<String, String> previous, List<String> keptSecrets) {
            this.keysInOtherRealms = List.copyOf(keysInOtherRealms);
            this.previous = previous == null ? null : Map.copyOf(previous);
            this.keptSecrets = List.copyOf(keptSecrets);
        }
    }

    private SigningConfigJson() {
    }

    /**
     * For {@code Native.describeSigningKey}: only the entered values (and an uploaded
     * certificate), so stored key material that arrived with the request (realm import, REST) is
     * never trusted.
     *
     * @param certificateSubject the common name of a minted certificate (the realm name), or null
     *                           for the native library's default
     */
    static String forValidation(ComponentModel model, ResolvedSecrets secrets, String certificateSubject) {
        return forValidation(model, secrets, certificateSubject, SaveContext.NONE);
    }

    /**
     * {@link #forValidation(ComponentModel, ResolvedSecrets, String)} with the realm (named
     * {@code realmName}, also the certificate subject) and what else Keycloak knows about the save.
     */
    static String forValidation(ComponentModel model, ResolvedSecrets secrets, String realmName,
            SaveContext context) {
        Map<String, Object> values = new LinkedHashMap<>(entered(model, secrets));
        putIfPresent(values, CERTIFICATE_KEY, model.get(CERTIFICATE_KEY));
        putIfPresent(values, CERTIFICATE_SUBJECT, realmName);
        putIfPresent(values, REALM, realmName);
        if (!context.keysInOtherRealms.isEmpty()) {
            values.put("keysInOtherRealms", context.keysInOtherRealms);
        }
        if (context.previous != null) {
            values.put("previous", context.previous);
        }
        if (!context.keptSecrets.isEmpty()) {
            values.put("keptSecrets", context.keptSecrets);
        }
        return toJson(values);
    }

    /**
     * For {@code Native.signingKeyHandle}: the entered values plus the stored key material, and the
     * realm's name (null if unknown), to which the server policy holds the stored provider again.
     */
    static String forSigning(ComponentModel model, ResolvedSecrets secrets, String realmName) {
        Map<String, Object> values = new LinkedHashMap<>(entered(model, secrets));
        for (String key : STORED_KEYS) {
            putIfPresent(values, key, model.get(key));
        }
        putIfPresent(values, REALM, realmName);
        return toJson(values);
    }

    private static Map<String, String> entered(ComponentModel model, ResolvedSecrets secrets) {
        Map<String, String> values = new LinkedHashMap<>();
        for (String key : KEY_KEYS) {
            putIfPresent(values, key, model.get(key));
        }
        // Fields of another mode may still be stored (the form keeps them); leave them out so
        // that no old secret is held in memory or sent for nothing.
        for (String key : credentialKeys(model.get(CREDENTIALS_MODE_KEY))) {
            boolean secret = ResolvedSecrets.VAULT_PROPERTIES.stream().anyMatch(p -> p.getName().equals(key));
            putIfPresent(values, key, secret ? secrets.value(key) : model.get(key));
        }
        return values;
    }

    /**
     * The credential fields a mode uses; none for {@code default} (and for an unknown mode, which
     * native code refuses). A test pins these lists to the native signing catalogue.
     */
    static List<String> credentialKeys(String credentialsMode) {
        if (ACCESS_KEY_CREDENTIALS_MODE.equals(credentialsMode)) {
            return ACCESS_KEY_KEYS;
        }
        if (ASSUME_ROLE_CREDENTIALS_MODE.equals(credentialsMode)) {
            return ASSUME_ROLE_KEYS;
        }
        return List.of();
    }

    private static void putIfPresent(Map<String, ? super String> values, String key, String value) {
        if (value != null && !value.isBlank()) {
            values.put(key, value);
        }
    }

    private static String toJson(Map<String, ?> values) {
        try {
            return JsonSerialization.writeValueAsString(values);
        } catch (IOException e) {
            // Cannot happen for a map of strings; do not chain the exception, it may quote values.
            throw new IllegalStateException("Could not encode the aws-kms provider configuration as JSON");
        }
    }
}
