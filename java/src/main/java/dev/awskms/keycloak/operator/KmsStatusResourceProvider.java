package dev.awskms.keycloak.operator;

import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.services.resources.admin.AdminEventBuilder;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProvider;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;

/** The admin resource {@code /admin/realms/{realm}/aws-kms}: {@link KmsStatusResource}. */
final class KmsStatusResourceProvider implements AdminRealmResourceProvider {

    @Override
    public Object getResource(KeycloakSession session, RealmModel realm, AdminPermissionEvaluator auth,
            AdminEventBuilder adminEvent) {
        return KmsStatusResource.of(session, realm, auth);
    }

    @Override
    public void close() {
    }
}
