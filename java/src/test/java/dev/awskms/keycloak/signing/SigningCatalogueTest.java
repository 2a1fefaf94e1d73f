package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.security.InvalidKeyException;
import java.security.KeyFactory;
import java.security.Provider;
import java.security.Signature;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.JavaAlgorithm;
import org.keycloak.util.JsonSerialization;

/**
 * The few signing names Java must know before native code may load (form choices, JCA services,
 * credential fields, the form's default session name) against the native library's catalogue of
 * its rules, so that the two sides cannot drift apart.
 */
@DisplayName("The signing names Java keeps")
class SigningCatalogueTest {

    private static JsonNode catalogue;
    private static Provider provider;

    @BeforeAll
    static void readCatalogue() throws Exception {
        catalogue = JsonSerialization.mapper.readTree(Native.signingCatalogue());
        provider = KmsJcaProvider.register();
    }

    private static List<JsonNode> algorithms() {
        List<JsonNode> algorithms = new ArrayList<>();
        catalogue.path("algorithms").forEach(algorithms::add);
        return algorithms;
    }

    @Test
    @DisplayName("offer exactly the native library's algorithms in the form")
    void formOffersTheNativeAlgorithms() {
        Set<String> nativeAlgorithms = algorithms().stream().map(a -> a.path("jose").asText()).collect(Collectors.toSet());
        assertEquals(nativeAlgorithms, new TreeSet<>(KmsKeyAttributes.ALGORITHMS));
        assertEquals(nativeAlgorithms.size(), KmsKeyAttributes.ALGORITHMS.size(), "no algorithm twice");
        assertEquals(KmsKeyAttributes.ALGORITHMS, KmsKeyAttributes.ALGORITHM_PROPERTY.getOptions());
    }

    @Test
    @DisplayName("register a JCA signature service under each algorithm's JCA name, the name Keycloak asks for")
    void jcaServicesAreTheNativeJcaNames() {
        Set<String> nativeNames = new TreeSet<>();
        for (JsonNode algorithm : algorithms()) {
            String jose = algorithm.path("jose").asText();
            String jca = algorithm.path("jca").asText();
            nativeNames.add(jca);
            assertEquals(jca, JavaAlgorithm.getJavaAlgorithm(jose), "Keycloak's JCA name for " + jose);
            assertNotNull(provider.getService("Signature", jca), jca);
        }
        Set<String> registered = provider.getServices().stream()
                .filter(service -> service.getType().equals("Signature"))
                .map(Provider.Service::getAlgorithm)
                .collect(Collectors.toCollection(TreeSet::new));
        assertEquals(nativeNames, registered);
    }

    @Test
    @DisplayName("sign with a key of the native library's key type for each algorithm, and refuse the other types")
    void jcaServicesAcceptTheNativeKeyType() throws Exception {
        Set<String> keyTypes = algorithms().stream().map(a -> a.path("keyType").asText())
                .collect(Collectors.toCollection(LinkedHashSet::new));
        for (JsonNode algorithm : algorithms()) {
            String jca = algorithm.path("jca").asText();
            String keyType = algorithm.path("keyType").asText();
            for (String type : keyTypes) {
                KmsPrivateKey key = KmsPrivateKey.usable(type, "component-1", "kid-1", "{}");
                Signature signature = Signature.getInstance(jca, provider);
                if (type.equals(keyType)) {
                    assertDoesNotThrow(() -> signature.initSign(key), jca + " with " + type);
                } else {
                    assertThrows(InvalidKeyException.class, () -> signature.initSign(key), jca + " with " + type);
                }
            }
        }
    }

    @Test
    @DisplayName("decode a stored public key with the JCA key factory named by the stored key type")
    void keyTypesNameJcaKeyFactories() {
        for (JsonNode algorithm : algorithms()) {
            String keyType = algorithm.path("keyType").asText();
            assertDoesNotThrow(() -> KeyFactory.getInstance(keyType), keyType);
        }
    }

    @Test
    @DisplayName("offer the native library's credentials modes and send each mode's fields that it reads")
    void credentialsModesAreTheNativeOnes() {
        List<String> modes = new ArrayList<>();
        catalogue.path("credentialsModes").fieldNames().forEachRemaining(modes::add);
        assertEquals(new TreeSet<>(modes), new TreeSet<>(KmsKeyAttributes.CREDENTIALS_MODE_PROPERTY.getOptions()));
        for (String mode : modes) {
            List<String> fields = new ArrayList<>();
            catalogue.path("credentialsModes").path(mode).forEach(field -> fields.add(field.asText()));
            assertEquals(fields, SigningConfigJson.credentialKeys(mode), mode);
        }
    }

    @Test
    @DisplayName("show the native library's default role session name as the form default")
    void defaultRoleSessionNameIsTheNativeOne() {
        assertEquals(catalogue.path("defaultRoleSessionName").asText(), KmsKeyAttributes.DEFAULT_ROLE_SESSION_NAME);
        assertEquals(KmsKeyAttributes.DEFAULT_ROLE_SESSION_NAME,
                KmsKeyAttributes.ROLE_SESSION_NAME_PROPERTY.getDefaultValue());
    }
}
