package dev.awskms.keycloak;

import static dev.awskms.keycloak.KmsKeyProviderFactory.ACCESS_KEY_CREDENTIALS_MODE;
import static dev.awskms.keycloak.KmsKeyProviderFactory.ACCESS_KEY_ID_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.ALGORITHM_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.CREDENTIALS_MODE_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.ENDPOINT_URL_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KEY_ARN_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KEY_SPEC_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KID_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KMS_KEY_ID_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.PUBLIC_KEY_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.REGION_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.keycloak.component.ComponentModel;
import org.keycloak.util.JsonSerialization;

/**
 * The {@code configJson} argument of {@link NativeBridge}: a flat JSON object of strings with the
 * component config keys of docs/design.md. The result contains the secret access key in
 * access-key mode; never log it.
 */
final class NativeConfigJson {

    /** What the administrator enters; validation recomputes everything else from KMS. */
    private static final List<String> ENTERED_KEYS = List.of(
            KMS_KEY_ID_KEY, REGION_KEY, ENDPOINT_URL_KEY, CREDENTIALS_MODE_KEY,
            ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, ALGORITHM_KEY);

    /** What validation stored from KMS, needed to sign without asking KMS for anything else. */
    private static final List<String> STORED_KEYS = List.of(KEY_ARN_KEY, KEY_SPEC_KEY, PUBLIC_KEY_KEY, KID_KEY);

    private NativeConfigJson() {
    }

    /**
     * For {@link NativeBridge#describeSigningKey}: only the entered values, so stored key
     * material that arrived with the request (realm import, REST) is never trusted.
     */
    static String forValidation(ComponentModel model) {
        return toJson(model, ENTERED_KEYS);
    }

    /** For {@link NativeBridge#signingKeyHandle}: the entered values plus the stored key material. */
    static String forSigning(ComponentModel model) {
        List<String> keys = new ArrayList<>(ENTERED_KEYS);
        keys.addAll(STORED_KEYS);
        return toJson(model, keys);
    }

    private static String toJson(ComponentModel model, List<String> keys) {
        // In default mode an old access key may still be stored; leave it out so it is not held
        // in memory for nothing.
        boolean accessKeyMode = ACCESS_KEY_CREDENTIALS_MODE.equals(model.get(CREDENTIALS_MODE_KEY));
        Map<String, String> values = new LinkedHashMap<>();
        for (String key : keys) {
            boolean credential = key.equals(ACCESS_KEY_ID_KEY) || key.equals(SECRET_ACCESS_KEY_KEY);
            String value = model.get(key);
            if (value != null && (accessKeyMode || !credential)) {
                values.put(key, value);
            }
        }
        try {
            return JsonSerialization.writeValueAsString(values);
        } catch (IOException e) {
            // Cannot happen for a map of strings; do not chain the exception, it may quote values.
            throw new IllegalStateException("Could not encode the aws-kms provider configuration as JSON");
        }
    }
}
