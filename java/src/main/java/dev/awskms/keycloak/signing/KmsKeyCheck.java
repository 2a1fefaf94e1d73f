package dev.awskms.keycloak.signing;

import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import dev.awskms.keycloak.internal.NativeLibraryLoadException;
import org.keycloak.component.ComponentModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.util.JsonSerialization;

/**
 * The status view's {@code ?check=true}: describes a stored aws-kms provider's key in KMS again, as a
 * save does ({@code describeSigningKey}: DescribeKey, GetPublicKey, and a Sign to mint a certificate
 * when none was uploaded), and reports how KMS differs from what is stored: the key disabled, pending
 * deletion or gone (the error code), or the key id (an alias) naming another key than the stored
 * {@code keyArn}. Nothing is stored.
 */
public final class KmsKeyCheck {

    private KmsKeyCheck() {
    }

    /** {@code {"checkedAt","ok","drift":[{"code","message"}...]}}. */
    public static Map<String, Object> check(KeycloakSession session, RealmModel realm, ComponentModel model) {
        List<Map<String, String>> drift = new ArrayList<>();
        ResolvedSecrets secrets = ResolvedSecrets.resolve(session, model);
        if (secrets.problem().isPresent()) {
            drift.add(entry("VAULT_SECRET_MISSING", secrets.problem().get()));
        } else {
            try {
                JsonNode described = JsonSerialization.mapper.readTree(Native.describeSigningKey(
                        SigningConfigJson.forValidation(model, secrets, realm.getName(),
                                SigningConfigJson.SaveContext.NONE)));
                String storedArn = model.get(KmsKeyAttributes.KEY_ARN_KEY);
                String keyArn = described.path(KmsKeyAttributes.KEY_ARN_KEY).asText();
                if (!keyArn.equals(storedArn)) {
                    drift.add(entry("KEY_ARN_CHANGED", String.format("'%s' now names %s, not the stored key %s",
                            model.get(KmsKeyAttributes.KMS_KEY_ID_KEY), keyArn, storedArn)));
                }
                String publicKey = described.path(KmsKeyAttributes.PUBLIC_KEY_KEY).asText();
                if (!publicKey.equals(model.get(KmsKeyAttributes.PUBLIC_KEY_KEY))) {
                    drift.add(entry("PUBLIC_KEY_CHANGED", "KMS returns another public key than the stored one (kid "
                            + described.path(KmsKeyAttributes.KID_KEY).asText() + ", stored "
                            + model.get(KmsKeyAttributes.KID_KEY) + ")"));
                }
            } catch (NativeException e) {
                drift.add(entry(e.wireCode(), e.detail()));
            } catch (NativeLibraryLoadException | IOException e) {
                drift.add(entry("UNAVAILABLE", e.getMessage()));
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("checkedAt", Instant.now().toString());
        result.put("ok", drift.isEmpty());
        result.put("drift", drift);
        return result;
    }

    private static Map<String, String> entry(String code, String message) {
        Map<String, String> entry = new LinkedHashMap<>();
        entry.put("code", code);
        entry.put("message", message);
        return entry;
    }
}
