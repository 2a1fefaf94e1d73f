package dev.awskms.keycloak.signing;

import java.util.Objects;
import java.util.stream.Stream;

import org.jboss.logging.Logger;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.keys.Attributes;
import org.keycloak.keys.KeyProvider;
import org.keycloak.models.RealmModel;

/**
 * Warns when a change leaves the realm's default signature algorithm without an active
 * {@code aws-kms} key.
 *
 * <p>What this extension guarantees is narrower than "never a software key": an {@code aws-kms}
 * provider that cannot sign never yields a software key in its place ({@code create()} never throws,
 * {@code createFallbackKeys} is refused). But when no <em>active</em> key at all exists for the
 * algorithm a token needs, Keycloak's {@code DefaultKeyManager} asks every factory for fallback keys,
 * and its {@code rsa-generated} (or {@code ecdsa-generated}) factory then creates a software key.
 * That happens for the realm's default algorithm when the only KMS key is passive, disabled, or of
 * another algorithm (realm default RS256 with an ES256 KMS key). Keycloak's API gives a save no way
 * to pass a warning to the administrator, so the warning goes to the server log.
 */
final class DefaultAlgorithmCoverage {

    private static final Logger LOG = Logger.getLogger(DefaultAlgorithmCoverage.class);

    private DefaultAlgorithmCoverage() {
    }

    /** After {@code saved} is stored (created or updated): warns if the default algorithm has no active KMS key. */
    static void checkAfterSave(RealmModel realm, ComponentModel saved) {
        check(realm, saved, "saved", true);
    }

    /** After {@code removed} is gone: warns if the default algorithm has no active KMS key any more. */
    static void checkAfterRemoval(RealmModel realm, ComponentModel removed) {
        check(realm, removed, "removed", false);
    }

    /** A check that only warns: it never fails the save or the removal. */
    private static void check(RealmModel realm, ComponentModel changed, String change, boolean stays) {
        try {
            Stream<ComponentModel> others = kmsComponents(realm)
                    .filter(component -> !Objects.equals(component.getId(), changed.getId()));
            Stream<ComponentModel> afterChange = stays ? Stream.concat(others, Stream.of(changed)) : others;
            String warning = warning(realm.getName(), defaultAlgorithm(realm), afterChange, changed, change);
            if (warning != null) {
                LOG.warn(warning);
            }
        } catch (RuntimeException e) {
            LOG.debugf(e, "Could not check the default signature algorithm after aws-kms key provider %s was %s",
                    changed.getId(), change);
        }
    }

    /** The realm's default signature algorithm, Keycloak's default when unset. */
    static String defaultAlgorithm(RealmModel realm) {
        String algorithm = realm.getDefaultSignatureAlgorithm();
        return algorithm == null || algorithm.isBlank() ? Algorithm.RS256 : algorithm;
    }

    /** Whether {@code component} is an active, enabled key for {@code algorithm}. */
    static boolean signsActively(ComponentModel component, String algorithm) {
        KeyStatus status = KeyStatus.from(component.get(Attributes.ACTIVE_KEY, true),
                component.get(Attributes.ENABLED_KEY, true));
        return status.isActive() && algorithm.equals(component.get(KmsKeyAttributes.ALGORITHM_KEY, Algorithm.RS256));
    }

    /** The warning for a realm whose default algorithm no active KMS key covers, or null. */
    static String warning(String realmName, String algorithm, Stream<ComponentModel> afterChange, ComponentModel changed,
            String change) {
        if (afterChange.anyMatch(component -> signsActively(component, algorithm))) {
            return null;
        }
        return String.format("aws-kms key provider %s (%s) %s in realm %s: no active aws-kms key signs %s, the realm's "
                + "default signature algorithm, any more. Tokens in %s are then signed by another active key of "
                + "the realm, or by a software key that Keycloak's fallback generates (rsa-generated/ecdsa-generated) "
                + "when there is none. Add an active aws-kms provider for %s, or change the realm's default "
                + "signature algorithm.", changed.getName(), changed.getId() == null ? "new" : changed.getId(), change,
                realmName, algorithm, algorithm, algorithm);
    }

    private static Stream<ComponentModel> kmsComponents(RealmModel realm) {
        return realm.getComponentsStream(realm.getId(), KeyProvider.class.getName())
                .filter(component -> KmsKeyProviderFactory.ID.equals(component.getProviderId()));
    }
}
