package dev.awskms.keycloak.signing;

import java.util.ArrayList;
import java.util.List;

import org.keycloak.component.ComponentModel;
import org.keycloak.provider.ProviderConfigProperty;

/**
 * The stored form of the secret fields ({@code secretAccessKey}, {@code externalId}), which tells a
 * secret kept from the database from one entered in the request being saved.
 *
 * <p>Keycloak masks secrets in the admin API and, when the mask comes back, puts the stored value in
 * its place before validation runs, so a kept secret and a re-typed identical one look the same.
 * Validation therefore stores every secret as {@value #MARKER} followed by the value: on the next
 * save, a value with the marker was kept from the database, and a value without it was entered in
 * this request. ('{' and '}' cannot occur in AWS secret keys or external IDs, and a
 * {@code ${vault.NAME}} reference is never written as "{stored}…" by anyone but this class.) The
 * native library decides what a kept secret may not do (follow a changed destination).
 *
 * <p>Every reader of the secrets goes through {@link #value}, which removes the marker. Keycloak's
 * admin GET and exports mask the stored form like any other secret (a vault reference in stored
 * form included). A value stored before this form existed has no marker; it counts as kept when
 * the request carries exactly the stored value, and is marked by the next successful save.
 */
final class StoredSecrets {

    /** The prefix of a secret in stored form. */
    static final String MARKER = "{stored}";

    private StoredSecrets() {
    }

    /** Whether {@code value} is in stored form. */
    static boolean isStoredForm(String value) {
        return value != null && value.startsWith(MARKER);
    }

    /** The secret itself: {@code value} without the marker; null stays null. */
    static String value(String value) {
        return isStoredForm(value) ? value.substring(MARKER.length()) : value;
    }

    /**
     * The secret fields of {@code model} (a component being saved) whose value was kept from
     * {@code stored} (the component as the database has it, null for a new one) rather than
     * entered in this request: in stored form, or, for a value stored before the stored form,
     * equal to the stored value. Without a stored component nothing is kept: a realm import may
     * carry values in stored form (an export of this server), and they are its own.
     */
    static List<String> kept(ComponentModel model, ComponentModel stored) {
        List<String> kept = new ArrayList<>();
        if (stored == null) {
            return kept;
        }
        for (ProviderConfigProperty property : ResolvedSecrets.VAULT_PROPERTIES) {
            String value = model.get(property.getName());
            if (value == null || value.isBlank()) {
                continue;
            }
            String storedValue = stored.get(property.getName());
            if (isStoredForm(value) || (!isStoredForm(storedValue) && value.equals(storedValue))) {
                kept.add(property.getName());
            }
        }
        return kept;
    }

    /** Puts every secret of {@code model} in stored form; called once the save has been validated. */
    static void markStored(ComponentModel model) {
        for (ProviderConfigProperty property : ResolvedSecrets.VAULT_PROPERTIES) {
            String value = model.get(property.getName());
            if (value != null && !value.isBlank() && !isStoredForm(value)) {
                model.put(property.getName(), MARKER + value);
            }
        }
    }
}
