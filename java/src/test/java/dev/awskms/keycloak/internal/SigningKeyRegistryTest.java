package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.util.JsonSerialization;

/**
 * The native registry of signing keys, counted: one key per live component however often its key
 * is asked for or reconfigured, KMS clients only for registered keys, nothing left after release.
 * No network: registering a key does not call KMS. The registry is one per process and other test
 * classes register keys too, so every count is a difference from before the test.
 */
@DisplayName("The native signing key registry")
class SigningKeyRegistryTest {

    private static String publicKey;
    private static String kid;

    @BeforeAll
    static void makeAKey() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048);
        byte[] spki = generator.generateKeyPair().getPublic().getEncoded();
        publicKey = Base64.getEncoder().encodeToString(spki);
        kid = Base64.getUrlEncoder().withoutPadding().encodeToString(MessageDigest.getInstance("SHA-256").digest(spki));
    }

    /** A stored configuration as the key provider sends it; {@code variant} changes its credentials. */
    private static String config(int variant) throws IOException {
        String keyArn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        Map<String, String> config = new LinkedHashMap<>();
        config.put("kmsKeyId", keyArn);
        config.put("region", "us-east-1");
        config.put("endpointUrl", "http://127.0.0.1:9");
        config.put("credentialsMode", "access-key");
        config.put("accessKeyId", String.format(Locale.ROOT, "AKIAREGISTRYTEST%04d", variant));
        config.put("secretAccessKey", "registry-test-secret-" + variant);
        config.put("algorithm", "RS256");
        config.put("keyArn", keyArn);
        config.put("keySpec", "RSA_2048");
        config.put("publicKey", publicKey);
        config.put("kid", kid);
        return JsonSerialization.writeValueAsString(config);
    }

    private static JsonNode stats() throws IOException {
        return JsonSerialization.mapper.readTree(Native.signingKeyStats());
    }

    private static List<String> componentIds(int count) {
        String prefix = "registry-test-" + UUID.randomUUID() + "-";
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            ids.add(prefix + i);
        }
        return ids;
    }

    @Test
    @DisplayName("gives the same handle for the same component and configuration, and a new one for another configuration")
    void handlesFollowTheConfiguration() throws Exception {
        String component = componentIds(1).get(0);
        try {
            long first = Native.signingKeyHandle(component, config(1));
            assertEquals(first, Native.signingKeyHandle(component, config(1)));

            long second = Native.signingKeyHandle(component, config(2));
            assertNotEquals(first, second);
            NativeException replaced = assertThrows(NativeException.class,
                    () -> Native.sign(first, "SHA256withRSA", new byte[] {1}));
            assertEquals(NativeErrorCode.INVALID_HANDLE, replaced.code());
        } finally {
            Native.releaseSigningKey(component);
        }
    }

    @Test
    @DisplayName("holds one key per live component and clients only for them, however many handles were asked for")
    void keysAndClientsStayBoundedUnderChurn() throws Exception {
        JsonNode before = stats();
        List<String> components = componentIds(3);
        List<Long> handles = new ArrayList<>();
        for (int round = 0; round < 20; round++) {
            for (int c = 0; c < components.size(); c++) {
                // Each component changes its configuration every other round, and asks twice.
                String config = config(c * 100 + round / 2);
                handles.add(Native.signingKeyHandle(components.get(c), config));
                handles.add(Native.signingKeyHandle(components.get(c), config));
            }
        }
        JsonNode during = stats();
        assertEquals(before.path("keys").asLong() + components.size(), during.path("keys").asLong(),
                "one key per live component: " + during);
        long clients = during.path("clients").asLong() - before.path("clients").asLong();
        assertTrue(clients >= 1 && clients <= components.size(), "clients of the live keys only: " + during);
        assertEquals(components.size() * 10, handles.stream().distinct().count(), "a handle per configuration");

        Native.releaseSigningKey(components.get(0));
        assertEquals(before.path("keys").asLong() + components.size() - 1, stats().path("keys").asLong());

        for (String component : components) {
            Native.releaseSigningKey(component);
        }
        // Releasing twice, or an id the registry never saw, changes nothing.
        Native.releaseSigningKey(components.get(0));
        Native.releaseSigningKey("registry-test-never-registered");
        JsonNode after = stats();
        assertEquals(before.path("keys").asLong(), after.path("keys").asLong(), "nothing left: " + after);
        assertEquals(before.path("clients").asLong(), after.path("clients").asLong(), "no client left: " + after);
    }
}
