package dev.awskms.keycloak.signing;

import java.util.List;
import java.util.stream.Collectors;

import dev.awskms.keycloak.internal.Native;
import org.jboss.logging.Logger;
import org.keycloak.component.ComponentModel;
import org.keycloak.keys.KeyProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakTransaction;
import org.keycloak.models.RealmModel;

/**
 * Releasing the native signing keys of components that change or go, so that the native registry
 * holds one key per live {@value KmsKeyProviderFactory#ID} component.
 *
 * <p>A key is released when the transaction that changes its component ends, committed or not,
 * not at once: until then requests may still sign with the old key, and a key that is needed again
 * registers itself anew (see {@link KmsPrivateKey}), which, for a component about to be removed,
 * would outlive it. After a rollback the component still exists and registers its key again on its
 * next signature. A server whose library never loaded has registered nothing, so nothing is loaded
 * for it.
 */
final class SigningKeyReleases {

    private static final Logger LOG = Logger.getLogger(SigningKeyReleases.class);

    private SigningKeyReleases() {
    }

    /** Every {@code aws-kms} component of a realm being removed. */
    static void ofRemovedRealm(RealmModel.RealmRemovedEvent event) {
        if (!Native.isLoaded()) {
            return;
        }
        RealmModel realm = event.getRealm();
        List<String> componentIds = realm.getComponentsStream(realm.getId(), KeyProvider.class.getName())
                .filter(component -> KmsKeyProviderFactory.ID.equals(component.getProviderId()))
                .map(ComponentModel::getId)
                .collect(Collectors.toList());
        afterTransaction(event.getKeycloakSession(), componentIds);
    }

    static void afterTransaction(KeycloakSession session, List<String> componentIds) {
        if (componentIds.isEmpty() || !Native.isLoaded()) {
            return;
        }
        session.getTransactionManager().enlistAfterCompletion(new KeycloakTransaction() {
            @Override
            public void begin() {
            }

            @Override
            public void commit() {
                release(componentIds);
            }

            @Override
            public void rollback() {
                release(componentIds);
            }

            @Override
            public void setRollbackOnly() {
            }

            @Override
            public boolean getRollbackOnly() {
                return false;
            }

            @Override
            public boolean isActive() {
                return true;
            }
        });
    }

    private static void release(List<String> componentIds) {
        for (String componentId : componentIds) {
            try {
                Native.releaseSigningKey(componentId);
            } catch (RuntimeException e) {
                LOG.warnf(e, "aws-kms key provider %s: could not release its signing key", componentId);
            }
        }
    }
}
