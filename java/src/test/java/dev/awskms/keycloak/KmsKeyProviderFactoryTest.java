package dev.awskms.keycloak;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.text.MessageFormat;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import com.fasterxml.jackson.core.type.TypeReference;
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
import org.keycloak.util.JsonSerialization;

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
    @DisplayName("offers exactly the documented config properties, with the secret access key and external ID masked")
    void configProperties() {
        Map<String, ProviderConfigProperty> properties = factory.getConfigProperties().stream()
                .collect(Collectors.toMap(ProviderConfigProperty::getName, Function.identity()));
        assertEquals(List.of("priority", "enabled", "active", "kmsKeyId", "region", "endpointUrl", "credentialsMode",
                        "accessKeyId", "secretAccessKey", "roleArn", "externalId", "roleSessionName", "stsEndpointUrl",
                        "algorithm", "certificate", "keyArn", "keySpec", "kid", "publicKey"),
                factory.getConfigProperties().stream().map(ProviderConfigProperty::getName).collect(Collectors.toList()));

        for (String name : List.of("secretAccessKey", "externalId")) {
            assertTrue(properties.get(name).isSecret(), name);
            assertEquals(ProviderConfigProperty.PASSWORD, properties.get(name).getType(), name);
        }
        assertTrue(properties.get("kmsKeyId").isRequired());
        assertEquals(List.of("default", "access-key", "assume-role"), properties.get("credentialsMode").getOptions());
        assertEquals("default", properties.get("credentialsMode").getDefaultValue());
        assertEquals("keycloak-aws-kms", properties.get("roleSessionName").getDefaultValue());
        ProviderConfigProperty certificate = properties.get("certificate");
        assertEquals(ProviderConfigProperty.FILE_TYPE, certificate.getType());
        assertEquals("X509 Certificate", certificate.getLabel());
        assertFalse(certificate.isRequired());
        assertFalse(certificate.isSecret());
        assertTrue(certificate.getHelpText().contains("minted"), certificate.getHelpText());
        assertFalse(properties.containsKey("mintedCertificate"), "a minted certificate is not part of the form");
        assertEquals(List.of("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
                properties.get("algorithm").getOptions());
        assertEquals("RS256", properties.get("algorithm").getDefaultValue());
        for (String written : List.of("keyArn", "keySpec", "kid", "publicKey")) {
            // Declared so that GET and export keep them; read-only because validation writes them.
            assertTrue(properties.get(written).isReadOnly(), written);
        }
        for (String name : List.of("kmsKeyId", "region", "endpointUrl", "credentialsMode", "accessKeyId",
                "secretAccessKey", "roleArn", "externalId", "roleSessionName", "stsEndpointUrl", "algorithm",
                "certificate")) {
            assertFalse(properties.get(name).isSecret() && !name.equals("secretAccessKey") && !name.equals("externalId"),
                    name);
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
    @DisplayName("requires a role ARN in assume-role mode, before asking KMS")
    void assumeRoleModeNeedsARoleArn() {
        for (String roleArn : new String[] {null, "  "}) {
            ComponentModel model = minimalModel();
            model.put("credentialsMode", "assume-role");
            if (roleArn != null) {
                model.put("roleArn", roleArn);
            }
            model.put("externalId", "external-id-0001");
            // Java's wording, not the native library's: native code was never asked.
            assertEquals("'Role ARN' is required", shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model))));
            assertNull(model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
        }
    }

    @Test
    @DisplayName("refuses a vault reference that does not resolve, naming the field and the vault secret")
    void refusesAnUnresolvableVaultReference() {
        KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(Map.of("other", "value"));
        ComponentModel model = minimalModel();
        model.put("credentialsMode", "access-key");
        model.put("accessKeyId", "AKIAEXAMPLE000000001");
        model.put("secretAccessKey", "${vault.kms-secret}");
        Map<String, List<String>> before = Map.copyOf(model.getConfig());

        ComponentValidationException e = assertThrows(ComponentValidationException.class,
                () -> factory.validateConfiguration(KeycloakStubs.session(vault), null, model));
        assertEquals("'Secret access key' refers to vault secret kms-secret, which was not found.", shownToAdministrator(e));
        assertEquals(List.of("${vault.kms-secret}"), vault.lookups());
        assertEquals(before, model.getConfig(), "nothing is written");

        ComponentModel externalId = minimalModel();
        externalId.put("credentialsMode", "assume-role");
        externalId.put("roleArn", "arn:aws:iam::111122223333:role/keycloak-signer");
        externalId.put("externalId", "${vault.role-external-id}");
        assertEquals("'External ID' refers to vault secret role-external-id, which was not found.",
                shownToAdministrator(assertThrows(ComponentValidationException.class,
                        () -> factory.validateConfiguration(KeycloakStubs.session(vault), null, externalId))));
        // Without a session there is no vault: a reference cannot resolve.
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, externalId));
    }

    @Test
    @DisplayName("sends native code only the credential fields of the configured mode, with vault references resolved")
    void nativeConfigCarriesTheModesFieldsResolved() throws Exception {
        KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(Map.of("kms-secret", "resolved-secret-0001",
                "external", "resolved-external-id"));
        ComponentModel model = minimalModel();
        model.put("accessKeyId", "AKIAEXAMPLE000000001");
        model.put("secretAccessKey", "${vault.kms-secret}");
        model.put("roleArn", "arn:aws:iam::111122223333:role/keycloak-signer");
        model.put("externalId", "${vault.external}");
        model.put("roleSessionName", "kc-test");
        model.put("certificate", "   ");
        model.put("mintedCertificate", "-----BEGIN CERTIFICATE-----");

        model.put("credentialsMode", "default");
        Map<String, String> sent = nativeConfig(NativeConfigJson.forValidation(model,
                ResolvedSecrets.resolve(KeycloakStubs.session(vault), model), "realm-a"));
        assertEquals(Map.of("kmsKeyId", "alias/signing", "region", "us-east-1", "credentialsMode", "default",
                "certificateSubject", "realm-a"), sent);
        assertEquals(List.of(), vault.lookups(), "fields of another mode are not even resolved");

        model.put("credentialsMode", "access-key");
        sent = nativeConfig(NativeConfigJson.forValidation(model,
                ResolvedSecrets.resolve(KeycloakStubs.session(vault), model), null));
        assertEquals(List.of("${vault.kms-secret}"), vault.lookups(), "access-key mode has no external ID");
        assertEquals("resolved-secret-0001", sent.get("secretAccessKey"));
        assertEquals("AKIAEXAMPLE000000001", sent.get("accessKeyId"));
        assertFalse(sent.containsKey("roleArn") || sent.containsKey("externalId"), sent.keySet().toString());

        model.put("credentialsMode", "assume-role");
        model.put("certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
        sent = nativeConfig(NativeConfigJson.forValidation(model,
                ResolvedSecrets.resolve(KeycloakStubs.session(vault), model), "realm-a"));
        assertEquals("resolved-external-id", sent.get("externalId"));
        assertEquals("resolved-secret-0001", sent.get("secretAccessKey"));
        assertEquals("arn:aws:iam::111122223333:role/keycloak-signer", sent.get("roleArn"));
        assertEquals("kc-test", sent.get("roleSessionName"));
        assertEquals(model.get("certificate"), sent.get("certificate"));
        assertFalse(sent.containsKey("mintedCertificate"));

        // The model keeps the references; the resolved values are never written back.
        assertEquals("${vault.kms-secret}", model.get("secretAccessKey"));
        assertEquals("${vault.external}", model.get("externalId"));
    }

    private static Map<String, String> nativeConfig(String json) throws Exception {
        return JsonSerialization.readValue(json, new TypeReference<Map<String, String>>() {
        });
    }

    @Test
    @DisplayName("builds the key without a certificate, and without throwing, when the stored certificate is corrupt")
    void createSurvivesACorruptStoredCertificate() throws Exception {
        KeycloakStubs.installCrypto();
        for (String field : List.of("certificate", "mintedCertificate")) {
            for (String corrupt : List.of("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----",
                    "-----BEGIN CERTIFICATE-----\n%%% not base64 %%%\n-----END CERTIFICATE-----", "garbage")) {
                ComponentModel model = storedEcModel();
                model.put(field, corrupt);
                KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
                assertNull(key.getCertificate(), field + ": " + corrupt);
                assertNull(key.getCertificateChain(), field);
                assertNotNull(key.getPublicKey(), "the key itself is still published");
                assertInstanceOf(KmsPrivateKey.class, key.getPrivateKey());
            }
        }
    }

    @Test
    @DisplayName("resolves a vault reference once when it builds the key, and lets signing fail with the reason if it does not resolve")
    void createResolvesVaultReferences() throws Exception {
        Map<String, String> secrets = new java.util.HashMap<>();
        KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(secrets);
        ComponentModel model = storedEcModel();
        model.put("credentialsMode", "access-key");
        model.put("accessKeyId", "AKIAEXAMPLE000000001");
        model.put("secretAccessKey", "${vault.kms-secret}");

        KeyWrapper unresolved = factory.create(KeycloakStubs.session(vault), model).getKeysStream().findFirst().orElseThrow();
        assertNotNull(unresolved.getPublicKey(), "the stored key is fine; only signing cannot work");
        Signature signature = Signature.getInstance("SHA384withECDSA");
        signature.initSign((PrivateKey) unresolved.getPrivateKey());
        signature.update(new byte[] {1});
        SignatureException e = assertThrows(SignatureException.class, signature::sign);
        assertTrue(e.getMessage().contains("'Secret access key' refers to vault secret kms-secret, which was not found"),
                e.getMessage());

        // Not kept: once the vault has the secret, the next request gets a key that can sign.
        secrets.put("kms-secret", "resolved-secret-0001");
        KeyWrapper resolved = factory.create(KeycloakStubs.session(vault), model).getKeysStream().findFirst().orElseThrow();
        assertFalse(resolved.getPrivateKey().toString().contains("unusable"), resolved.getPrivateKey().toString());
        assertSame(resolved, factory.create(KeycloakStubs.session(vault), model).getKeysStream().findFirst().orElseThrow());
        assertEquals(2, vault.lookups().size(), "one lookup per built key, none for a kept key: " + vault.lookups());
        assertFalse(resolved.getPrivateKey().toString().contains("resolved-secret-0001"));
        assertFalse(model.getConfig().toString().contains("resolved-secret-0001"), "never written to the model");
    }

    /** A component as validation stores it, for a P-384 key made here (no KMS involved). */
    private static ComponentModel storedEcModel() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp384r1"));
        PublicKey publicKey = generator.generateKeyPair().getPublic();
        ComponentModel model = minimalModel();
        model.put("algorithm", "ES384");
        model.put(KmsKeyProviderFactory.KEY_ARN_KEY, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        model.put(KmsKeyProviderFactory.KEY_SPEC_KEY, "ECC_NIST_P384");
        model.put(KmsKeyProviderFactory.PUBLIC_KEY_KEY, Base64.getEncoder().encodeToString(publicKey.getEncoded()));
        model.put(KmsKeyProviderFactory.KID_KEY, "stored-kid");
        return model;
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

        /** Credentials the emulator accepts for everything but kms:Sign. */
        private static final String NO_SIGN_ACCESS_KEY_ID = "AKIANOSIGN0000000001";
        private static final String NO_SIGN_SECRET = "no-sign-secret-access-key-0001";

        private KmsEmulator kms;

        @BeforeAll
        void startEmulator() throws Exception {
            KeycloakStubs.installCrypto();
            kms = KmsEmulator.start(List.of(
                            "--credentials", KmsEmulator.ACCESS_KEY_ID + ":" + KmsEmulator.SECRET_ACCESS_KEY,
                            "--credentials", NO_SIGN_ACCESS_KEY_ID + ":" + NO_SIGN_SECRET + ":deny=Sign"),
                    "alias/java-rsa=RSA_2048", "alias/java-ec=ECC_NIST_P256");
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
        @DisplayName("stores a certificate minted by the KMS key under mintedCertificate, and the key carries it")
        void mintsACertificate() throws Exception {
            ComponentModel model = kms.component("component-minted", "alias/java-ec", "ES256");
            model.put(KmsKeyProviderFactory.CERTIFICATE_KEY, "");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);

            assertNull(model.get(KmsKeyProviderFactory.CERTIFICATE_KEY), "the form field stays empty");
            String minted = model.get(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY);
            assertNotNull(minted);
            assertTrue(minted.startsWith("-----BEGIN CERTIFICATE-----"), minted);

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            X509Certificate certificate = key.getCertificate();
            assertNotNull(certificate, "the key carries the minted certificate");
            assertEquals(List.of(certificate), key.getCertificateChain());
            assertArrayEquals(((PublicKey) key.getPublicKey()).getEncoded(), certificate.getPublicKey().getEncoded());
            assertEquals("CN=java-realm", certificate.getSubjectX500Principal().getName());
            // Self-signed by the KMS key.
            certificate.verify((PublicKey) key.getPublicKey());
            certificate.checkValidity();

            // A later save without an upload mints afresh, e.g. for the key an alias points to by then.
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);
            String mintedAgain = model.get(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY);
            assertNotNull(mintedAgain);
            assertNotEquals(minted, mintedAgain);
            assertNull(model.get(KmsKeyProviderFactory.CERTIFICATE_KEY));
        }

        @Test
        @DisplayName("keeps an uploaded certificate of the key in 'certificate' and drops a minted one")
        void keepsAnUploadedCertificate() throws Exception {
            String uploaded = mintedCertificateOf("alias/java-rsa", "RS256");
            ComponentModel model = kms.component("component-uploaded", "alias/java-rsa", "PS256");
            model.put(KmsKeyProviderFactory.CERTIFICATE_KEY, "\n\n" + uploaded.replace("\n", "\r\n") + "\n");
            model.put(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY, "left over from an earlier save");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);

            assertEquals(uploaded.strip(), model.get(KmsKeyProviderFactory.CERTIFICATE_KEY).strip(),
                    "stored re-encoded, without the extra whitespace");
            assertNull(model.get(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY));

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertNotNull(key.getCertificate());
            assertArrayEquals(((PublicKey) key.getPublicKey()).getEncoded(), key.getCertificate().getPublicKey().getEncoded());
            assertEquals(List.of(key.getCertificate()), key.getCertificateChain());
        }

        @Test
        @DisplayName("refuses the certificate of another key with CERTIFICATE_MISMATCH naming both keys, and writes nothing")
        void refusesTheCertificateOfAnotherKey() throws Exception {
            String ecCertificate = mintedCertificateOf("alias/java-ec", "ES256");
            ComponentModel model = kms.component("component-mismatch-cert", "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.CERTIFICATE_KEY, ecCertificate);
            Map<String, List<String>> before = Map.copyOf(model.getConfig());

            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model)));
            assertTrue(shown.contains(kms.keyArn("alias/java-rsa")), shown);
            assertTrue(shown.contains("certificate: EC P-256") && shown.contains("KMS: RSA 2048"), shown);
            assertTrue(shown.contains("Upload the certificate of this KMS key, or clear the field to have one minted."),
                    shown);
            assertTrue(shown.endsWith("[CERTIFICATE_MISMATCH]"), shown);
            assertEquals(before, model.getConfig(), "nothing is written");
        }

        @Test
        @DisplayName("refuses a private key pasted as the certificate with INVALID_CERTIFICATE, without echoing it")
        void refusesAPrivateKey() throws Exception {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(2048);
            String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                    .encodeToString(generator.generateKeyPair().getPrivate().getEncoded());
            String pasted = "-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n";
            ComponentModel model = kms.component("component-private-key", "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.CERTIFICATE_KEY, pasted);
            Map<String, List<String>> before = Map.copyOf(model.getConfig());

            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            String shown = shownToAdministrator(e);
            assertTrue(shown.contains("private key"), shown);
            assertTrue(shown.contains("-----BEGIN CERTIFICATE-----"), shown);
            assertTrue(shown.endsWith("[INVALID_CERTIFICATE]"), shown);
            for (String line : body.split("\n")) {
                assertFalse(shown.contains(line) || String.valueOf(e.getCause()).contains(line), "echoed key material");
            }
            assertEquals(before, model.getConfig(), "nothing is written");
        }

        @Test
        @DisplayName("refuses credentials that may read the key but not sign with it, and writes nothing")
        void refusesCredentialsThatCannotSign() {
            ComponentModel model = kms.component("component-no-sign", "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.ACCESS_KEY_ID_KEY, NO_SIGN_ACCESS_KEY_ID);
            model.put(KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY, NO_SIGN_SECRET);
            Map<String, List<String>> before = Map.copyOf(model.getConfig());

            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model)));
            assertTrue(shown.contains("kms:Sign"), shown);
            assertTrue(shown.endsWith("[ACCESS_DENIED]"), shown);
            assertFalse(shown.contains(NO_SIGN_SECRET), shown);
            assertEquals(before, model.getConfig(), "nothing is written");
        }

        @Test
        @DisplayName("reads the secret access key from the vault on save and when signing, and keeps only the reference")
        void resolvesTheSecretAccessKeyFromTheVault() throws Exception {
            KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(Map.of("kms-secret", KmsEmulator.SECRET_ACCESS_KEY));
            ComponentModel model = kms.component("component-vault", "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY, "${vault.kms-secret}");
            factory.validateConfiguration(KeycloakStubs.session(vault), KeycloakStubs.realm("java-realm"), model);

            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
            assertEquals("${vault.kms-secret}", model.get(KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY));
            assertFalse(model.getConfig().toString().contains(KmsEmulator.SECRET_ACCESS_KEY), "resolved value written");

            KeyWrapper key = factory.create(KeycloakStubs.session(vault), model).getKeysStream().findFirst().orElseThrow();
            Signature signer = Signature.getInstance("SHA256withRSA");
            signer.initSign((PrivateKey) key.getPrivateKey());
            signer.update(new byte[] {1, 2, 3});
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance("SHA256withRSA");
            verifier.initVerify((PublicKey) key.getPublicKey());
            verifier.update(new byte[] {1, 2, 3});
            assertTrue(verifier.verify(signature));
            assertEquals(List.of("${vault.kms-secret}", "${vault.kms-secret}"), vault.lookups(),
                    "once on save, once when the key was built");

            // A wrong secret in the vault is refused like a wrong secret in the field, and not echoed.
            KeycloakStubs.FakeVault wrong = new KeycloakStubs.FakeVault(Map.of("kms-secret", "wrong-secret-from-the-vault-01"));
            ComponentModel wrongModel = kms.component("component-vault-wrong", "alias/java-rsa", "RS256");
            wrongModel.put(KmsKeyProviderFactory.SECRET_ACCESS_KEY_KEY, "${vault.kms-secret}");
            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(KeycloakStubs.session(wrong), null, wrongModel)));
            assertTrue(shown.endsWith("[ACCESS_DENIED]"), shown);
            assertFalse(shown.contains("wrong-secret-from-the-vault-01"), shown);
        }

        @Test
        @DisplayName("uses a stored certificate only if it certifies the stored key")
        void ignoresAStoredCertificateOfAnotherKey() throws Exception {
            ComponentModel model = kms.component("component-foreign-cert", "alias/java-rsa", "RS256");
            factory.validateConfiguration(null, null, model);
            // As if the database had been edited: the certificate of another key.
            model.put(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY, mintedCertificateOf("alias/java-ec", "ES256"));
            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertNull(key.getCertificate());
            assertNotNull(key.getPublicKey());
        }

        /** Saves a throwaway component for {@code alias} and returns the certificate minted for it. */
        private String mintedCertificateOf(String alias, String algorithm) {
            ComponentModel model = kms.component("component-mint-" + alias.replace('/', '-'), alias, algorithm);
            factory.validateConfiguration(null, null, model);
            return model.get(KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY);
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

    /** Credentials mode assume-role against the emulator's STS. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    @DisplayName("when assuming a role")
    class AssumingARole {

        private static final String ROLE = "arn:aws:iam::111122223333:role/keycloak-signer";
        private static final String PARTNER_ROLE = "arn:aws:iam::111122223333:role/keycloak-partner";
        private static final String PARTNER_EXTERNAL_ID = "partner-external-id-0001";
        private static final String NO_SIGN_ROLE = "arn:aws:iam::111122223333:role/keycloak-no-sign";

        private KmsEmulator kms;

        @BeforeAll
        void startEmulator() throws Exception {
            KeycloakStubs.installCrypto();
            kms = KmsEmulator.start(List.of(
                            "--role", ROLE,
                            "--role", PARTNER_ROLE + ":external-id=" + PARTNER_EXTERNAL_ID,
                            "--role", NO_SIGN_ROLE + ":deny=Sign"),
                    "alias/java-rsa=RSA_2048");
        }

        @AfterAll
        void stopEmulator() throws Exception {
            if (kms != null) {
                kms.close();
            }
        }

        /** A component that assumes {@code roleArn} as the emulator's default access key. */
        private ComponentModel component(String id, String roleArn) {
            ComponentModel model = kms.component(id, "alias/java-rsa", "RS256");
            model.put(KmsKeyProviderFactory.CREDENTIALS_MODE_KEY, KmsKeyProviderFactory.ASSUME_ROLE_CREDENTIALS_MODE);
            model.put(KmsKeyProviderFactory.ROLE_ARN_KEY, roleArn);
            model.put(KmsKeyProviderFactory.STS_ENDPOINT_URL_KEY, kms.stsUrl());
            return model;
        }

        @Test
        @DisplayName("validates and signs with the assumed role")
        void signsWithTheAssumedRole() throws Exception {
            ComponentModel model = component("component-role", ROLE);
            model.put(KmsKeyProviderFactory.ROLE_SESSION_NAME_KEY, "java-test");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);
            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyProviderFactory.KEY_ARN_KEY));

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            Signature signer = Signature.getInstance("SHA256withRSA");
            signer.initSign((PrivateKey) key.getPrivateKey());
            signer.update(new byte[] {4, 5, 6});
            Signature verifier = Signature.getInstance("SHA256withRSA");
            verifier.initVerify((PublicKey) key.getPublicKey());
            verifier.update(new byte[] {4, 5, 6});
            assertTrue(verifier.verify(signer.sign()));
        }

        @Test
        @DisplayName("passes the external ID, read from the vault, that the role requires")
        void passesTheExternalId() {
            KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(Map.of("partner-id", PARTNER_EXTERNAL_ID));
            ComponentModel model = component("component-partner", PARTNER_ROLE);
            model.put(KmsKeyProviderFactory.EXTERNAL_ID_KEY, "${vault.partner-id}");
            factory.validateConfiguration(KeycloakStubs.session(vault), null, model);
            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
            assertEquals("${vault.partner-id}", model.get(KmsKeyProviderFactory.EXTERNAL_ID_KEY));
        }

        @Test
        @DisplayName("refuses a wrong external ID with CREDENTIALS_UNAVAILABLE naming the role, without echoing the ID")
        void refusesAWrongExternalId() {
            String wrongId = "wrong-external-id-0002";
            ComponentModel model = component("component-partner-wrong", PARTNER_ROLE);
            model.put(KmsKeyProviderFactory.EXTERNAL_ID_KEY, wrongId);
            Map<String, List<String>> before = Map.copyOf(model.getConfig());

            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            String shown = shownToAdministrator(e);
            assertTrue(shown.startsWith("Could not assume role " + PARTNER_ROLE + ": "), shown);
            assertTrue(shown.contains("Check 'Role ARN' and 'External ID'"), shown);
            assertTrue(shown.endsWith("[CREDENTIALS_UNAVAILABLE]"), shown);
            assertFalse(shown.contains(wrongId) || e.getMessage().contains(wrongId), shown);
            assertEquals(before, model.getConfig(), "nothing is written");
        }

        @Test
        @DisplayName("refuses a role that may not sign with the key")
        void refusesARoleThatCannotSign() {
            ComponentModel model = component("component-role-no-sign", NO_SIGN_ROLE);
            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model)));
            assertTrue(shown.contains("kms:Sign") && shown.contains("role's permissions"), shown);
            assertTrue(shown.endsWith("[ACCESS_DENIED]"), shown);
            assertNull(model.get(KmsKeyProviderFactory.KEY_ARN_KEY));
        }
    }
}
