package dev.awskms.keycloak.signing;

import static dev.awskms.keycloak.signing.KmsKeyAttributes.CREDENTIALS_MODE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.EXTERNAL_ID_PROPERTY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.SECRET_ACCESS_KEY_PROPERTY;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.keycloak.component.ComponentModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.vault.VaultStringSecret;

/**
 * The secret config values of a component ({@code secretAccessKey}, {@code externalId}) with
 * {@code ${vault.NAME}} references resolved through Keycloak's vault, read from their stored form
 * ({@link StoredSecrets}).
 *
 * <p>Resolved values live only here and, from here, in the native config JSON of a
 * {@link KmsPrivateKey} or of one validation call; never in the component model or a log.
 * Resolution never throws: a reference that does not resolve is reported by {@link #problem()},
 * which names the field and the vault secret, never a value.
 */
final class ResolvedSecrets {

    /** The config properties that may hold a vault reference. */
    static final List<ProviderConfigProperty> VAULT_PROPERTIES = List.of(SECRET_ACCESS_KEY_PROPERTY, EXTERNAL_ID_PROPERTY);

    /** Keycloak's own syntax ({@code DefaultVaultTranscriber}): the whole value is {@code ${vault.NAME}}. */
    private static final Pattern VAULT_REFERENCE = Pattern.compile("^\\$\\{vault\\.(.+?)}$");

    /** Config key → value to use: resolved for a reference, as stored otherwise. */
    private final Map<String, String> values;
    private final String problem;

    private ResolvedSecrets(Map<String, String> values, String problem) {
        this.values = values;
        this.problem = problem;
    }

    /**
     * Resolves the secret fields of {@code model} that its credentials mode uses (a field of another
     * mode may still be stored; it is neither resolved nor sent). {@code session} may be null (no
     * vault): a reference then counts as not found.
     */
    static ResolvedSecrets resolve(KeycloakSession session, ComponentModel model) {
        List<String> used = SigningConfigJson.credentialKeys(model.get(CREDENTIALS_MODE_KEY));
        Map<String, String> values = new LinkedHashMap<>();
        String problem = null;
        for (ProviderConfigProperty property : VAULT_PROPERTIES) {
            if (!used.contains(property.getName())) {
                continue;
            }
            // The secret as entered: without the marker of its stored form (StoredSecrets).
            String stored = StoredSecrets.value(model.get(property.getName()));
            if (stored == null || stored.isBlank()) {
                continue;
            }
            Matcher reference = VAULT_REFERENCE.matcher(stored);
            if (!reference.matches()) {
                values.put(property.getName(), stored);
                continue;
            }
            String name = reference.group(1);
            String found;
            try {
                found = lookUp(session, stored);
            } catch (RuntimeException e) {
                // Only the class: a vault provider's message might quote what it read.
                if (problem == null) {
                    problem = "'" + property.getLabel() + "' refers to vault secret " + name
                            + ", which could not be read from the vault (" + e.getClass().getSimpleName() + ")";
                }
                continue;
            }
            if (found != null) {
                values.put(property.getName(), found);
            } else if (problem == null) {
                problem = "'" + property.getLabel() + "' refers to vault secret " + name + ", which was not found";
            }
        }
        return new ResolvedSecrets(Collections.unmodifiableMap(values), problem);
    }

    /** The secret, or null if the vault does not have it (or there is no session, hence no vault). */
    private static String lookUp(KeycloakSession session, String reference) {
        if (session == null) {
            return null;
        }
        try (VaultStringSecret secret = session.vault().getStringSecret(reference)) {
            if (secret == null) {
                return null;
            }
            return secret.get().filter(value -> !value.isEmpty()).orElse(null);
        }
    }

    /** The value to send for {@code key}: resolved, or as stored; null if absent or unresolved. */
    String value(String key) {
        return values.get(key);
    }

    /** Why a reference could not be resolved (field label and vault secret name), if one could not. */
    Optional<String> problem() {
        return Optional.ofNullable(problem);
    }

    /** Every value, as stored or as resolved, that must never appear in a message. */
    List<String> secretValues() {
        return List.copyOf(values.values());
    }

    @Override
    public String toString() {
        return "ResolvedSecrets" + values.keySet() + (problem != null ? " (unresolved)" : "");
    }
}
