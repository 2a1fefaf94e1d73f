package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.UUID;
import java.util.stream.Stream;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.keycloak.component.ComponentModel;

@DisplayName("Warnings for operators")
class OperatorWarningsTest {

    private static ComponentModel component(String algorithm, boolean active, boolean enabled) {
        ComponentModel model = new ComponentModel();
        model.setId(UUID.randomUUID().toString());
        model.setName("kms-" + algorithm);
        model.setProviderId(KmsKeyProviderFactory.ID);
        model.put(KmsKeyAttributes.ALGORITHM_KEY, algorithm);
        model.put("active", Boolean.toString(active));
        model.put("enabled", Boolean.toString(enabled));
        return model;
    }

    @Nested
    @DisplayName("when the realm's default algorithm loses its active aws-kms key")
    class DefaultAlgorithm {

        @Test
        @DisplayName("warns when the only aws-kms key is of another algorithm, naming the fallback")
        void otherAlgorithm() {
            ComponentModel es256 = component("ES256", true, true);
            String warning = DefaultAlgorithmCoverage.warning("r", "RS256", Stream.of(es256), es256, "saved");
            assertNotNull(warning);
            assertTrue(warning.contains("no active aws-kms key signs RS256, the realm's default signature algorithm"),
                    warning);
            assertTrue(warning.contains("rsa-generated"), warning);
        }

        @Test
        @DisplayName("warns when the key of the default algorithm is passive or disabled")
        void passiveOrDisabled() {
            for (ComponentModel model : new ComponentModel[] {component("RS256", false, true),
                    component("RS256", true, false)}) {
                assertNotNull(DefaultAlgorithmCoverage.warning("r", "RS256", Stream.of(model), model, "saved"));
            }
        }

        @Test
        @DisplayName("stays silent while another active aws-kms key signs the default algorithm")
        void covered() {
            ComponentModel es256 = component("ES256", true, true);
            ComponentModel rs256 = component("RS256", true, true);
            assertNull(DefaultAlgorithmCoverage.warning("r", "RS256", Stream.of(es256, rs256), es256, "saved"));
        }

        @Test
        @DisplayName("takes a component without an algorithm as RS256, Keycloak's default")
        void defaultsToRs256() {
            ComponentModel model = component("RS256", true, true);
            model.getConfig().remove(KmsKeyAttributes.ALGORITHM_KEY);
            assertTrue(DefaultAlgorithmCoverage.signsActively(model, "RS256"));
        }
    }

    @Nested
    @DisplayName("when the published certificate is about to expire")
    class Expiry {

        private final Instant now = Instant.parse("2030-06-01T00:00:00Z");

        @Test
        @DisplayName("says nothing while more than 30 days are left")
        void silentWithTimeLeft() {
            assertNull(CertificateExpiry.warning(component("RS256", true, true), true,
                    now.plus(Duration.ofDays(31)), now));
        }

        @Test
        @DisplayName("asks to save again for a minted certificate, to replace an uploaded one")
        void remedies() {
            ComponentModel model = component("RS256", true, true);
            String minted = CertificateExpiry.warning(model, true, now.plus(Duration.ofDays(10)), now);
            assertTrue(minted.contains("the minted certificate it publishes expires on 2030-06-11T00:00:00Z (in 10 days)"),
                    minted);
            assertTrue(minted.contains("Save the provider again"), minted);
            String uploaded = CertificateExpiry.warning(model, false, now.minus(Duration.ofDays(1)), now);
            assertTrue(uploaded.contains("the uploaded certificate it publishes expired on"), uploaded);
            assertTrue(uploaded.contains("Upload a renewed certificate"), uploaded);
        }

        @Test
        @DisplayName("warns once per component and certificate")
        void once() {
            String id = UUID.randomUUID().toString();
            Instant end = now.plus(Duration.ofDays(5));
            assertTrue(CertificateExpiry.firstWarning(id, end));
            assertFalse(CertificateExpiry.firstWarning(id, end));
            assertTrue(CertificateExpiry.firstWarning(id, end.plus(Duration.ofDays(1))), "a new certificate");
            CertificateExpiry.forget(id);
            assertTrue(CertificateExpiry.firstWarning(id, end.plus(Duration.ofDays(1))));
            CertificateExpiry.forget(id);
        }

        @Test
        @DisplayName("tells a minted certificate from an uploaded one by the upload field")
        void mintedOrUploaded() {
            ComponentModel model = component("RS256", true, true);
            assertTrue(CertificateExpiry.isMinted(model));
            model.put(KmsKeyAttributes.CERTIFICATE_KEY, "-----BEGIN CERTIFICATE-----");
            assertFalse(CertificateExpiry.isMinted(model));
            assertEquals(Duration.ofDays(30), CertificateExpiry.WARNING_PERIOD);
        }
    }
}
