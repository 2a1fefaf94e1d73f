package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.text.MessageFormat;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.core.type.TypeReference;
import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.internal.Native;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.util.JsonSerialization;

/** Saving an aws-kms component: Keycloak's field checks, the vault, and the native check against KMS. */
@DisplayName("Validating an aws-kms key provider")
class KmsKeyValidationTest {

    private final KmsKeyProviderFactory factory = new KmsKeyProviderFactory();

    /** What an administrator sees when the save is refused (Keycloak's ComponentResource). */
    private static String shownToAdministrator(ComponentValidationException e) {
        return MessageFormat.format(e.getMessage(), e.getParameters());
    }

    private static ComponentModel minimalModel() {
        ComponentModel model = new ComponentModel();
        model.setId("component-1");
        model.setName("kms");
        model.put(KmsKeyAttributes.KMS_KEY_ID_KEY, "alias/signing");
        model.put(KmsKeyAttributes.REGION_KEY, "us-east-1");
        return model;
    }

    @Test
    @DisplayName("refuses ill-formed fields with Keycloak's messages before asking KMS")
    void refusesIllFormedFields() {
        ComponentModel badPriority = minimalModel();
        badPriority.put("priority", "high");
        assertEquals("'Priority' should be a number", shownToAdministrator(assertThrows(ComponentValidationException.class,
                () -> factory.validateConfiguration(null, null, badPriority))));

        ComponentModel badBoolean = minimalModel();
        badBoolean.put("enabled", "yes");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badBoolean));

        ComponentModel badAlgorithm = minimalModel();
        badAlgorithm.put("algorithm", "HS256");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badAlgorithm));

        ComponentModel badMode = minimalModel();
        badMode.put("credentialsMode", "instance-role");
        assertThrows(ComponentValidationException.class, () -> factory.validateConfiguration(null, null, badMode));

        ComponentModel twoKeys = minimalModel();
        twoKeys.getConfig().put(KmsKeyAttributes.KMS_KEY_ID_KEY, List.of("alias/a", "alias/b"));
        assertEquals("'KMS key' should be a single entry", shownToAdministrator(assertThrows(
                ComponentValidationException.class, () -> factory.validateConfiguration(null, null, twoKeys))));
    }

    /** The save is refused with the native library's INVALID_CONFIGURATION message, and nothing is written. */
    private String refusedByTheNativeLibrary(ComponentModel model) {
        Map<String, List<String>> before = Map.copyOf(model.getConfig());
        String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                () -> factory.validateConfiguration(null, null, model)));
        assertTrue(shown.endsWith("[INVALID_CONFIGURATION]"), shown);
        assertEquals(before, model.getConfig(), "nothing is written");
        return shown;
    }

    @Test
    @DisplayName("leaves a missing KMS key to the native library, which names the field")
    void missingKeyIsReportedByTheNativeLibrary() {
        ComponentModel noKey = minimalModel();
        noKey.getConfig().remove(KmsKeyAttributes.KMS_KEY_ID_KEY);
        String shown = refusedByTheNativeLibrary(noKey);
        assertTrue(shown.startsWith("'KMS key' is required"), shown);

        ComponentModel blankKey = minimalModel();
        blankKey.put(KmsKeyAttributes.KMS_KEY_ID_KEY, "  ");
        shown = refusedByTheNativeLibrary(blankKey);
        assertTrue(shown.startsWith("'KMS key' is required"), shown);
    }

    @Test
    @DisplayName("leaves the access key fields of access-key mode to the native library")
    void accessKeyModeFieldsAreCheckedByTheNativeLibrary() {
        ComponentModel noSecret = minimalModel();
        noSecret.put("credentialsMode", "access-key");
        noSecret.put("accessKeyId", "AKIAEXAMPLE000000001");
        String shown = refusedByTheNativeLibrary(noSecret);
        assertTrue(shown.startsWith("'Secret access key' is required"), shown);

        ComponentModel noId = minimalModel();
        noId.put("credentialsMode", "access-key");
        noId.put("secretAccessKey", "s3cr3t-value");
        shown = refusedByTheNativeLibrary(noId);
        assertTrue(shown.startsWith("'Access key ID' is required"), shown);
        assertFalse(shown.contains("s3cr3t-value"), shown);

        ComponentModel neither = minimalModel();
        neither.put("credentialsMode", "access-key");
        shown = refusedByTheNativeLibrary(neither);
        assertTrue(shown.contains("'Access key ID'") && shown.contains("'Secret access key'"), shown);
    }

    @Test
    @DisplayName("leaves the role ARN of assume-role mode to the native library")
    void assumeRoleModeRoleArnIsCheckedByTheNativeLibrary() {
        for (String roleArn : new String[] {null, "  "}) {
            ComponentModel model = minimalModel();
            model.put("credentialsMode", "assume-role");
            if (roleArn != null) {
                model.put("roleArn", roleArn);
            }
            model.put("externalId", "external-id-0001");
            String shown = refusedByTheNativeLibrary(model);
            assertTrue(shown.startsWith("'Role ARN' is required"), shown);
            assertFalse(shown.contains("external-id-0001"), shown);
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
        Map<String, String> sent = nativeConfig(SigningConfigJson.forValidation(model,
                ResolvedSecrets.resolve(KeycloakStubs.session(vault), model), "realm-a"));
        assertEquals(Map.of("kmsKeyId", "alias/signing", "region", "us-east-1", "credentialsMode", "default",
                "certificateSubject", "realm-a", "realm", "realm-a"), sent);
        assertEquals(List.of(), vault.lookups(), "fields of another mode are not even resolved");

        model.put("credentialsMode", "access-key");
        sent = nativeConfig(SigningConfigJson.forValidation(model,
                ResolvedSecrets.resolve(KeycloakStubs.session(vault), model), null));
        assertEquals(List.of("${vault.kms-secret}"), vault.lookups(), "access-key mode has no external ID");
        assertEquals("resolved-secret-0001", sent.get("secretAccessKey"));
        assertEquals("AKIAEXAMPLE000000001", sent.get("accessKeyId"));
        assertFalse(sent.containsKey("roleArn") || sent.containsKey("externalId"), sent.keySet().toString());

        model.put("credentialsMode", "assume-role");
        model.put("certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
        sent = nativeConfig(SigningConfigJson.forValidation(model,
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
    @DisplayName("escapes validation messages so that Keycloak's MessageFormat shows them verbatim")
    void escapesMessageFormat() {
        String text = "KMS key 'alias/x' {0} isn't {here}";
        assertEquals(text, MessageFormat.format(KmsKeyValidation.escapeMessageFormat(text), (Object[]) null));
        assertEquals("Access denied: ********** leaked",
                KmsKeyValidation.withoutSecret("Access denied: topsecret leaked", "topsecret"));
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
        @DisplayName("stores the key ARN, key spec, key type, public key and kid read from KMS, whatever the request brought")
        void storesTheKeyMaterial() throws Exception {
            ComponentModel model = kms.component("component-rsa", "alias/java-rsa", "RS256");
            model.put(KmsKeyAttributes.PUBLIC_KEY_KEY, "forged-in-the-request");
            model.put(KmsKeyAttributes.KEY_TYPE_KEY, "EC");
            model.put(KmsKeyAttributes.CURVE_KEY, "P-256");
            factory.validateConfiguration(null, null, model);

            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyAttributes.KEY_ARN_KEY));
            assertEquals("RSA_2048", model.get(KmsKeyAttributes.KEY_SPEC_KEY));
            assertEquals("RSA", model.get(KmsKeyAttributes.KEY_TYPE_KEY));
            assertFalse(model.getConfig().containsKey(KmsKeyAttributes.CURVE_KEY), "an RSA key has no curve");
            byte[] spki = Base64.getDecoder().decode(model.get(KmsKeyAttributes.PUBLIC_KEY_KEY));
            String expectedKid = Base64.getUrlEncoder().withoutPadding()
                    .encodeToString(MessageDigest.getInstance("SHA-256").digest(spki));
            assertEquals(expectedKid, model.get(KmsKeyAttributes.KID_KEY));

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertEquals(expectedKid, key.getKid());
            assertEquals(KeyType.RSA, key.getType());
        }

        @Test
        @DisplayName("stores a certificate minted by the KMS key under mintedCertificate, and the key carries it")
        void mintsACertificate() throws Exception {
            ComponentModel model = kms.component("component-minted", "alias/java-ec", "ES256");
            model.put(KmsKeyAttributes.CERTIFICATE_KEY, "");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);

            assertEquals("EC", model.get(KmsKeyAttributes.KEY_TYPE_KEY));
            assertEquals("P-256", model.get(KmsKeyAttributes.CURVE_KEY));
            assertNull(model.get(KmsKeyAttributes.CERTIFICATE_KEY), "the form field stays empty");
            String minted = model.get(KmsKeyAttributes.MINTED_CERTIFICATE_KEY);
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
            String mintedAgain = model.get(KmsKeyAttributes.MINTED_CERTIFICATE_KEY);
            assertNotNull(mintedAgain);
            assertNotEquals(minted, mintedAgain);
            assertNull(model.get(KmsKeyAttributes.CERTIFICATE_KEY));
        }

        @Test
        @DisplayName("mints the certificate for the native library's default subject when no realm is given")
        void mintsForTheDefaultSubjectWithoutARealm() throws Exception {
            ComponentModel model = kms.component("component-minted-default", "alias/java-ec", "ES256");
            factory.validateConfiguration(null, null, model);

            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            String subject = JsonSerialization.mapper.readTree(Native.signingCatalogue())
                    .path("defaultCertificateSubject").asText();
            assertEquals("CN=" + subject, key.getCertificate().getSubjectX500Principal().getName());
        }

        @Test
        @DisplayName("keeps an uploaded certificate of the key in 'certificate' and drops a minted one")
        void keepsAnUploadedCertificate() throws Exception {
            String uploaded = mintedCertificateOf("alias/java-rsa", "RS256");
            ComponentModel model = kms.component("component-uploaded", "alias/java-rsa", "PS256");
            model.put(KmsKeyAttributes.CERTIFICATE_KEY, "\n\n" + uploaded.replace("\n", "\r\n") + "\n");
            model.put(KmsKeyAttributes.MINTED_CERTIFICATE_KEY, "left over from an earlier save");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);

            assertEquals(uploaded.strip(), model.get(KmsKeyAttributes.CERTIFICATE_KEY).strip(),
                    "stored re-encoded, without the extra whitespace");
            assertNull(model.get(KmsKeyAttributes.MINTED_CERTIFICATE_KEY));

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
            model.put(KmsKeyAttributes.CERTIFICATE_KEY, ecCertificate);
            Map<String, List<String>> before = Map.copyOf(model.getConfig());

            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model)));
            assertTrue(shown.contains(kms.keyArn("alias/java-rsa")), shown);
            assertTrue(shown.contains("certificate: EC P-256 with SHA-256 fingerprint")
                    && shown.contains("KMS: RSA 2048 with SHA-256 fingerprint"), shown);
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
            model.put(KmsKeyAttributes.CERTIFICATE_KEY, pasted);
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
            model.put(KmsKeyAttributes.ACCESS_KEY_ID_KEY, NO_SIGN_ACCESS_KEY_ID);
            model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, NO_SIGN_SECRET);
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
            model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, "${vault.kms-secret}");
            factory.validateConfiguration(KeycloakStubs.session(vault), KeycloakStubs.realm("java-realm"), model);

            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyAttributes.KEY_ARN_KEY));
            // The reference, in stored form (StoredSecrets), never the value.
            assertEquals(StoredSecrets.MARKER + "${vault.kms-secret}", model.get(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY));
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
            wrongModel.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, "${vault.kms-secret}");
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
            model.put(KmsKeyAttributes.MINTED_CERTIFICATE_KEY, mintedCertificateOf("alias/java-ec", "ES256"));
            KeyWrapper key = factory.create(null, model).getKeysStream().findFirst().orElseThrow();
            assertNull(key.getCertificate());
            assertNotNull(key.getPublicKey());
        }

        /** Saves a throwaway component for {@code alias} and returns the certificate minted for it. */
        private String mintedCertificateOf(String alias, String algorithm) {
            ComponentModel model = kms.component("component-mint-" + alias.replace('/', '-'), alias, algorithm);
            factory.validateConfiguration(null, null, model);
            return model.get(KmsKeyAttributes.MINTED_CERTIFICATE_KEY);
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
            model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, wrongSecret);
            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            String shown = shownToAdministrator(e);
            assertTrue(shown.contains("kms:DescribeKey"), shown);
            assertTrue(shown.contains("ACCESS_DENIED"), shown);
            assertFalse(shown.contains(wrongSecret), shown);
            assertFalse(e.getMessage().contains(wrongSecret), e.getMessage());
            assertNull(model.get(KmsKeyAttributes.KEY_ARN_KEY));
        }

        @Test
        @DisplayName("refuses an algorithm that does not fit the key spec")
        void algorithmMismatch() {
            ComponentModel model = kms.component("component-mismatch", "alias/java-ec", "RS256");
            ComponentValidationException e = assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(null, null, model));
            assertTrue(shownToAdministrator(e).contains("KEY_SPEC_MISMATCH"), shownToAdministrator(e));
            assertNull(model.get(KmsKeyAttributes.PUBLIC_KEY_KEY));
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
            model.put(KmsKeyAttributes.CREDENTIALS_MODE_KEY, KmsKeyAttributes.ASSUME_ROLE_CREDENTIALS_MODE);
            model.put(KmsKeyAttributes.ROLE_ARN_KEY, roleArn);
            model.put(KmsKeyAttributes.STS_ENDPOINT_URL_KEY, kms.stsUrl());
            return model;
        }

        @Test
        @DisplayName("validates and signs with the assumed role")
        void signsWithTheAssumedRole() throws Exception {
            ComponentModel model = component("component-role", ROLE);
            model.put(KmsKeyAttributes.ROLE_SESSION_NAME_KEY, "java-test");
            factory.validateConfiguration(null, KeycloakStubs.realm("java-realm"), model);
            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyAttributes.KEY_ARN_KEY));

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
            model.put(KmsKeyAttributes.EXTERNAL_ID_KEY, "${vault.partner-id}");
            factory.validateConfiguration(KeycloakStubs.session(vault), null, model);
            assertEquals(kms.keyArn("alias/java-rsa"), model.get(KmsKeyAttributes.KEY_ARN_KEY));
            assertEquals(StoredSecrets.MARKER + "${vault.partner-id}", model.get(KmsKeyAttributes.EXTERNAL_ID_KEY));
        }

        @Test
        @DisplayName("refuses a wrong external ID with CREDENTIALS_UNAVAILABLE naming the role, without echoing the ID")
        void refusesAWrongExternalId() {
            String wrongId = "wrong-external-id-0002";
            ComponentModel model = component("component-partner-wrong", PARTNER_ROLE);
            model.put(KmsKeyAttributes.EXTERNAL_ID_KEY, wrongId);
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
            assertNull(model.get(KmsKeyAttributes.KEY_ARN_KEY));
        }
    }
}
