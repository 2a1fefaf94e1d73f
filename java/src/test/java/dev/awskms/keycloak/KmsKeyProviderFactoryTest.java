package dev.awskms.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.security.spec.ECGenParameterSpec;
import java.text.MessageFormat;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.provider.ProviderConfigProperty;

@DisplayName("The aws-kms key provider factory")
class KmsKeyProviderFactoryTest {

    private final KmsKeyProviderFactory factory = new KmsKeyProviderFactory();

    /** What an administrator sees when the save is refused (Keycloak's ComponentResource). */
    private static String shownToAdministrator(ComponentValidationException e) {
        return MessageFormat.format(e.getMessage(), e.getParameters());
    }

    private static ComponentModel minimalModel() {
        ComponentModel model = new ComponentModel();
        model.setId("component-1");
        model.setName("kms");
        model.put(KmsKeyProviderFactory.KMS_KEY_ID_KEY, "alias/signing");
        model.put(KmsKeyProviderFactory.REGION_KEY, "us-east-1");
        return model;
    }

    @Test
    @DisplayName("has id aws-kms and help text for administrators")
    void idAndHelpText() {
        assertEquals("aws-kms", factory.getId());
        assertTrue(factory.getHelpText().contains("AWS KMS"));
    }

    @Test
    @DisplayName("offers exactly the documented config properties, with the secret access key masked")
    void configProperties() {
        Map<String, ProviderConfigProperty> properties = factory.getConfigProperties().stream()
                .collect(Collectors.toMap(ProviderConfigProperty::getName, Function.identity()));
        assertEquals(List.of("priority", "enabled", "active", "kmsKeyId", "region", "endpointUrl", "credentialsMode",
                        "accessKeyId", "secretAccessKey", "algorithm", "keyArn", "keySpec", "kid", "publicKey"),
                factory.getConfigProperties().stream().map(ProviderConfigProperty::getName).collect(Collectors.toList()));

        ProviderConfigProperty secret = properties.get("secretAccessKey");
        assertTrue(secret.isSecret());
        assertEquals(ProviderConfigProperty.PASSWORD, secret.getType());
        assertTrue(properties.get("kmsKeyId").isRequired());
        assertEquals(List.of("default", "access-key"), properties.get("credentialsMode").getOptions());
        assertEquals("default", properties.get("credentialsMode").getDefaultValue());
        assertEquals(List.of("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
                properties.get("algorithm").getOptions());
        assertEquals("RS256", properties.get("algorithm").getDefaultValue());
        for (String written : List.of("keyArn", "keySpec", "kid", "publicKey")) {
            // Declared so that GET and export keep them; read-only because validation writes them.
            assertTrue(properties.get(written).isReadOnly(), written);
        }
        for (String name : List.of("kmsKeyId", "region", "endpointUrl", "credentialsMode", "accessKeyId",
                "secretAccessKey", "algorithm")) {
            assertFalse(properties.get(name).isSecret() && !name.equals("secretAccessKey"), name);
            assertFalse(properties.get(name).getLabel().isBlank(), name);
            assertTrue(properties.get(name).getHelpText().length() > 20, name);
        }
    }

    @Test
    @DisplayName("never creates fallback keys")
    void noFallbackKeys() {
        assertFalse(factory.createFallbackKeys(null, KeyUse.SIG, "RS256"));
    }

    @Test
    @DisplayName("refuses ill-formed fields before asking KMS")
    void refusesIllFormedFields() {
        ComponentModel noKey = minimalModel();
        noKey.getConfig().remove(KmsKeyProviderFactory.KMS_KEY_ID_KEY);
        assertEquals("'KMS key' is required", shownToAdministrator(
                assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, noKey))));

        ComponentModel blankKey = minimalModel();
        blankKey.put(KmsKeyProviderFactory.KMS_KEY_ID_KEY, "  ");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, blankKey));

        ComponentModel badPriority = minimalModel();
        badPriority.put("priority", "high");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badPriority));

        ComponentModel badBoolean = minimalModel();
        badBoolean.put("enabled", "yes");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badBoolean));

        ComponentModel badAlgorithm = minimalModel();
        badAlgorithm.put("algorithm", "HS256");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badAlgorithm));

        ComponentModel badMode = minimalModel();
        badMode.put("credentialsMode", "instance-role");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badMode));
    }

    @Test
    @DisplayName("requires both access key fields in access-key mode")
    void accessKeyModeNeedsBothFields() {
        ComponentModel noSecret = minimalModel();
        noSecret.put("credentialsMode", "access-key");
        noSecret.put("accessKeyId", "AKIAEXAMPLE000000001");
        assertEquals("'Secret access key' is required", shownToAdministrator(
                assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, noSecret))));

        ComponentModel noId = minimalModel();
        noId.put("credentialsMode", "access-key");
        noId.put("secretAccessKey", "s3cr3t-value");
        ComponentValidationException e = assertThrows(ComponentValidationException.class,
                () -> factory.validateConfiguration(null, null, noId));
        assertEquals("'Access key ID' is required", shownToAdministrator(e));
    }

    @Test
    @DisplayName("escapes validation messages so that Keycloak's MessageFormat shows them verbatim")
    void escapesMessageFormat() {
        String text = "KMS key 'alias/x' {0} isn't {here}";
        assertEquals(text, MessageFormat.format(KmsKeyProviderFactory.escapeMessageFormat(text), (Object[]) null));
        assertEquals("Access denied: ********** leaked",
                KmsKeyProviderFactory.withoutSecret("Access denied: topsecret leaked", "topsecret"));
    }

    @Test
    @DisplayName("builds the key from stored material without native code or KMS")
    void createBuildsTheKeyFromStoredMaterial() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp384r1"));
        PublicKey publicKey = generator.generateKeyPair().getPublic();
        ComponentModel model = minimalModel();
        model.put("algorithm", "ES384");
        model.put("priority", "150");
        model.put("active", "false");
        model.put(KmsKeyProviderFactory.KEY_ARN_KEY, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        model.put(KmsKeyProviderFactory.KEY_SPEC_KEY, "ECC_NIST_P384");
        model.put(KmsKeyProviderFactory.PUBLIC_KEY_KEY, Base64.getEncoder().encodeToString(publicKey.getEncoded()));
        model.put(KmsKeyProviderFactory.KID_KEY, "stored-kid");

        KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
        assertEquals("component-1", key.getProviderId());
        assertEquals(150L, key.getProviderPriority());
        assertEquals("stored-kid", key.getKid());
        assertEquals("ES384", key.getAlgorithm());
        assertEquals(KeyType.EC, key.getType());
        assertEquals("P-384", key.getCurve());
        assertEquals(KeyUse.SIG, key.getUse());
        assertEquals(KeyStatus.PASSIVE, key.getStatus());
        assertEquals(publicKey, key.getPublicKey());
        assertInstanceOf(KmsPrivateKey.class, key.getPrivateKey());
        assertEquals("EC", key.getPrivateKey().getAlgorithm());

        // The built key is kept on the model for later requests, and rebuilt when the config changes.
        assertSame(key, factory.create(null, model).getKeysStream().findFirst().orElseThrow());
        model.put("priority", "160");
        KeyWrapper rebuilt = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
        assertEquals(160L, rebuilt.getProviderPriority());
    }

    @Test
    @DisplayName("still yields an active key that fails signing loudly when the stored material is missing or corrupt")
    void createNeverThrows() throws Exception {
        ComponentModel missing = minimalModel();
        ComponentModel corrupt = minimalModel();
        corrupt.put(KmsKeyProviderFactory.KEY_ARN_KEY, "arn:aws:kms:us-east-1:111122223333:key/x");
        corrupt.put(KmsKeyProviderFactory.PUBLIC_KEY_KEY, "not base64 at all!");
        corrupt.put(KmsKeyProviderFactory.KID_KEY, "kid-x");
        ComponentModel garbage = minimalModel();
        garbage.put("priority", "not a number");
        garbage.put("algorithm", "ES256");
        garbage.put(KmsKeyProviderFactory.PUBLIC_KEY_KEY, "AAAA");

        for (ComponentModel model : List.of(missing, corrupt, garbage)) {
            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertEquals(KeyStatus.ACTIVE, key.getStatus());
            assertNull(key.getPublicKey(), "an unusable key is not published");
            assertNotNull(key.getKid());
            Signature signature = Signature.getInstance(
                    key.getType().equals(KeyType.EC) ? "SHA256withECDSA" : "SHA256withRSA");
            signature.initSign((PrivateKey) key.getPrivateKey());
            signature.update(new byte[] {1});
            SignatureException e = assertThrows(SignatureException.class, signature::sign);
            assertTrue(e.getMessage().contains("component-1") && e.getMessage().contains("save the provider again"),
                    e.getMessage());
        }
    }

    @BeforeAll
    static void registerProvider() {
        KmsJcaProvider.register();
    }

    /** Validation against the KMS emulator. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    @DisplayName("when validating against KMS")
    class AgainstKms {

        private KmsEmulator kms;

        @BeforeAll
        void startEmulator() throws Exception {
            kms = KmsEmulator.start("alias/java-rsa=RSA_2048", "alias/java-ec=ECC_NIST_P256");
        }

        @AfterAll
        void stopEmulator() throws Exception {
            if (kms != null) {
                kms.close();
            }
        }

        @Test
        @DisplayName("stores the key ARN, key spec, public key and kid read from KMS")
        void storesTheKeyMaterial() throws Exception {
            ComponentModel model = kms.component("component-rsa", "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.PUBLIC_KEY_KEY, "forged-in-the-request");
            factory.validateConfiguration(null, null, model);

            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
            assertEquals("RSA_2048", model.get(KmsKeyProviderFactory.KEY_SPEC_KEY));
            byte[] spki = Base64.getDecoder().decode(model.get(KmsKeyProviderFactory.PUBLIC_KEY_KEY));
            String expectedKid = Base64.getUrlEncoder().withoutPadding()
                    .encodeToString(MessageDigest.getInstance("SHA-256").digest(spki));
            assertEquals(expectedKid, model.get(KmsKeyProviderFactory.KID_KEY));

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertEquals(expectedKid, key.getKid());
            assertEquals(KeyType.RSA, key.getType());
        }

        @Test
        @DisplayName("refuses an unknown key with KEY_NOT_FOUND wording and writes nothing")
        void unknownKey() {
            ComponentModel model = kms.component("component-missing", "alias/does-not-exist", "RS256");
            Map<String, List<String>> before = Map.copyOf(model.getConfig());
            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            String shown = shownToAdministrator(e);
            assertTrue(shown.startsWith("KMS key alias/does-not-exist was not found in region " + kms.region()), shown);
            assertTrue(shown.contains("KEY_NOT_FOUND"), shown);
            assertEquals(before, model.getConfig());
        }

        @Test
        @DisplayName("refuses wrong credentials with ACCESS_DENIED wording and never shows the secret")
        void wrongSecret() {
            ComponentModel model = kms.component("component-denied", "alias/java-rsa", "RS256");
            String wrongSecret = "wrong-secret-access-key-value-0001";
            model.put(KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY, wrongSecret);
            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            String shown = shownToAdministrator(e);
            assertTrue(shown.contains("kms:DescribeKey"), shown);
            assertTrue(shown.contains("ACCESS_DENIED"), shown);
            assertFalse(shown.contains(wrongSecret), shown);
            assertFalse(e.getMessage().contains(wrongSecret), e.getMessage());
            assertNull(model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
        }

        @Test
        @DisplayName("refuses an algorithm that does not fit the key spec")
        void algorithmMismatch() {
            ComponentModel model = kms.component("component-mismatch", "alias/java-ec", "RS256");
            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            assertTrue(shownToAdministrator(e).contains("KEY_SPEC_MISMATCH"), shownToAdministrator(e));
            assertNull(model.get(KmsKeyProviderFactory.PUBLIC_KEY_KEY));
        }
    }
}
