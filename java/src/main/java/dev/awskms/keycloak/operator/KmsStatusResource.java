package dev.awskms.keycloak.operator;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.signing.KmsKeyCheck;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.ext.Provider;
import org.jboss.logging.Logger;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.crypto.KeyUse;
import org.keycloak.keys.KeyProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;
import org.keycloak.util.JsonSerialization;

/**
 * {@code GET /admin/realms/{realm}/aws-kms}: each aws-kms key provider of the realm (key ARN,
 * algorithm, kid, enabled/active, certificate expiry, the last signing success and failure on this
 * node) and the realm's active software signing keys; with {@code ?check=true} the stored key is
 * described in KMS again and drift is reported. Needs {@code view-realm}. The response is documented
 * in docs/operations.md.
 */
// Keycloak 24+ (RESTEasy Reactive) serves a resource returned by an admin realm resource provider
// only if its class is known as a JAX-RS class at build time: @Provider marks it (without it the
// GET answers 405), and such a class needs a no-argument constructor (Quarkus makes it a bean).
@Provider
public final class KmsStatusResource {

    static final String PROVIDER_ID = "aws-kms";
    private static final Logger LOG = Logger.getLogger(KmsStatusResource.class);

    private KeycloakSession session;
    private RealmModel realm;
    private AdminPermissionEvaluator auth;

    /** For Quarkus's build-time discovery only; requests get one from {@link #of}. */
    public KmsStatusResource() {
    }

    static KmsStatusResource of(KeycloakSession session, RealmModel realm, AdminPermissionEvaluator auth) {
        KmsStatusResource resource = new KmsStatusResource();
        resource.session = session;
        resource.realm = realm;
        resource.auth = auth;
        return resource;
    }

    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> status(@QueryParam("check") boolean check) {
        auth.realm().requireViewRealm();
        Map<String, JsonNode> outcomes = outcomesByComponent();
        List<Map<String, Object>> providers = new ArrayList<>();
        realm.getComponentsStream(realm.getId(), KeyProvider.class.getName())
                .filter(component -> PROVIDER_ID.equals(component.getProviderId()))
                .sorted((a, b) -> a.getName().compareTo(b.getName()))
                .forEach(component -> providers.add(provider(component, outcomes.get(component.getId()), check)));
        Map<String, Object> status = new LinkedHashMap<>();
        status.put("realm", realm.getName());
        status.put("providers", providers);
        status.put("activeSoftwareSigningKeys", activeSoftwareSigningKeys());
        return status;
    }

    private Map<String, Object> provider(ComponentModel component, JsonNode outcome, boolean check) {
        Map<String, Object> provider = new LinkedHashMap<>();
        provider.put("id", component.getId());
        provider.put("name", component.getName());
        provider.put("keyArn", component.get("keyArn"));
        provider.put("algorithm", component.get("algorithm", "RS256"));
        provider.put("kid", component.get("kid"));
        provider.put("enabled", component.get("enabled", true));
        provider.put("active", component.get("active", true));
        provider.put("priority", component.get("priority", 0L));
        provider.put("certificateExpires", certificateExpiry(component));
        provider.put("lastSigningSuccess", outcome == null ? null : time(outcome.path("lastSuccess")));
        Map<String, Object> failure = null;
        if (outcome != null && outcome.path("lastFailure").isObject()) {
            JsonNode last = outcome.path("lastFailure");
            failure = new LinkedHashMap<>();
            failure.put("at", time(last.path("at")));
            failure.put("code", last.path("code").asText());
            failure.put("message", last.path("message").asText());
            failure.put("failuresSinceSuccess", outcome.path("failuresSinceSuccess").asLong());
        }
        provider.put("lastSigningFailure", failure);
        if (check) {
            provider.put("check", KmsKeyCheck.check(session, realm, component));
        }
        return provider;
    }

    private static String time(JsonNode epochMillis) {
        return epochMillis.isNumber() ? Instant.ofEpochMilli(epochMillis.asLong()).toString() : null;
    }

    /** The signing outcomes of this node, by component id; none while the library is not loaded. */
    private static Map<String, JsonNode> outcomesByComponent() {
        Map<String, JsonNode> outcomes = new LinkedHashMap<>();
        if (!Native.isLoaded()) {
            return outcomes;
        }
        try {
            for (JsonNode outcome : JsonSerialization.mapper.readTree(Native.signingOutcomes())) {
                outcomes.put(outcome.path("componentId").asText(), outcome);
            }
        } catch (IOException | RuntimeException e) {
            LOG.debugf("Could not read the signing outcomes: %s", e);
        }
        return outcomes;
    }

    /** When the provider's certificate (uploaded, else minted) expires, or null. */
    private static String certificateExpiry(ComponentModel component) {
        String pem = component.get("certificate");
        if (pem == null || pem.isBlank()) {
            pem = component.get("mintedCertificate");
        }
        if (pem == null || pem.isBlank()) {
            return null;
        }
        String text = pem.contains("BEGIN CERTIFICATE") ? pem
                : "-----BEGIN CERTIFICATE-----\n" + pem.trim() + "\n-----END CERTIFICATE-----\n";
        try {
            X509Certificate certificate = (X509Certificate) CertificateFactory.getInstance("X.509")
                    .generateCertificate(new ByteArrayInputStream(text.getBytes(StandardCharsets.US_ASCII)));
            return certificate.getNotAfter().toInstant().toString();
        } catch (CertificateException | ClassCastException e) {
            return null;
        }
    }

    /** The realm's active signing keys that are not in KMS: an operator migrating to KMS wants this empty. */
    private List<Map<String, Object>> activeSoftwareSigningKeys() {
        return session.keys().getKeysStream(realm)
                .filter(key -> key.getUse() == KeyUse.SIG && key.getStatus() == KeyStatus.ACTIVE)
                .filter(key -> key.getPrivateKey() != null)
                .map(key -> {
                    ComponentModel component = realm.getComponent(key.getProviderId());
                    return new Object[] {key, component};
                })
                .filter(pair -> pair[1] == null || !PROVIDER_ID.equals(((ComponentModel) pair[1]).getProviderId()))
                .map(pair -> {
                    org.keycloak.crypto.KeyWrapper key = (org.keycloak.crypto.KeyWrapper) pair[0];
                    ComponentModel component = (ComponentModel) pair[1];
                    Map<String, Object> entry = new LinkedHashMap<>();
                    entry.put("providerId", component == null ? null : component.getProviderId());
                    entry.put("providerName", component == null ? null : component.getName());
                    entry.put("kid", key.getKid());
                    entry.put("algorithm", key.getAlgorithm());
                    entry.put("type", key.getType());
                    return entry;
                })
                .collect(Collectors.toList());
    }
}
