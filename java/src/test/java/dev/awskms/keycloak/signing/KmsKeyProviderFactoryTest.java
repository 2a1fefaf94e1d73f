package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeErrorCode;
import dev.awskms.keycloak.internal.NativeException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.JavaAlgorithm;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.KeyProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.KeycloakTransaction;
import org.keycloak.models.KeycloakTransactionManager;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderEventListener;
import org.keycloak.util.JsonSerialization;

@DisplayName("The aws-kms key provider factory")
class KmsKeyProviderFactoryTest {

    private final KmsKeyProviderFactory factory = new KmsKeyProviderFactory();

    @BeforeAll
    static void registerProvider() {
        KmsJcaProvider.register();
    }

    private static ComponentModel minimalModel() {
        ComponentModel model = new ComponentModel();
        model.setId("component-1");
        model.setName("kms");
        model.setProviderId(KmsKeyProviderFactory.ID);
        model.put(KmsKeyAttributes.KMS_KEY_ID_KEY, "alias/signing");
        model.put(KmsKeyAttributes.REGION_KEY, "us-east-1");
        return model;
    }

    /** A component as validation stores it, for a P-384 key made here (no KMS involved). */
    private static ComponentModel storedEcModel() throws Exception {
        return storedEcModel(newEcPublicKey());
    }

    private static ComponentModel storedEcModel(PublicKey publicKey) {
        ComponentModel model = minimalModel();
        model.put("algorithm", "ES384");
        model.put(KmsKeyAttributes.KEY_ARN_KEY, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        model.put(KmsKeyAttributes.KEY_SPEC_KEY, "ECC_NIST_P384");
        model.put(KmsKeyAttributes.KEY_TYPE_KEY, "EC");
        model.put(KmsKeyAttributes.CURVE_KEY, "P-384");
        model.put(KmsKeyAttributes.PUBLIC_KEY_KEY, Base64.getEncoder().encodeToString(publicKey.getEncoded()));
        model.put(KmsKeyAttributes.KID_KEY, "stored-kid");
        return model;
    }

    private static PublicKey newEcPublicKey() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp384r1"));
        return generator.generateKeyPair().getPublic();
    }

    private KeyWrapper createdKey(KeycloakSession session, ComponentModel model) {
        return factory.create(session, model).getKeysStream().findFirst().orElseThrow();
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
                        "algorithm", "certificate", "keyArn", "keySpec", "keyType", "curve", "kid", "publicKey"),
                factory.getConfigProperties().stream().map(ProviderConfigProperty::getName).collect(Collectors.toList()));

        for (String name : List.of("secretAccessKey", "externalId")) {
            assertTrue(properties.get(name).isSecret(), name);
            assertEquals(ProviderConfigProperty.PASSWORD, properties.get(name).getType(), name);
        }
        assertTrue(properties.get("kmsKeyId").isRequired());
        assertEquals(List.of("default", "access-key", "assume-role"), properties.get("credentialsMode").getOptions());
        assertEquals("default", properties.get("credentialsMode").getDefaultValue());
        assertEquals(KmsKeyAttributes.DEFAULT_ROLE_SESSION_NAME, properties.get("roleSessionName").getDefaultValue());
        ProviderConfigProperty certificate = properties.get("certificate");
        assertEquals(ProviderConfigProperty.FILE_TYPE, certificate.getType());
        assertEquals("X509 Certificate", certificate.getLabel());
        assertFalse(certificate.isRequired());
        assertFalse(certificate.isSecret());
        assertTrue(certificate.getHelpText().contains("minted"), certificate.getHelpText());
        assertFalse(properties.containsKey("mintedCertificate"), "a minted certificate is not part of the form");
        assertEquals(KmsKeyAttributes.ALGORITHMS, properties.get("algorithm").getOptions());
        assertEquals("RS256", properties.get("algorithm").getDefaultValue());
        for (String written : List.of("keyArn", "keySpec", "keyType", "curve", "kid", "publicKey")) {
            // Declared so that GET and export keep them; read-only because validation writes them.
            assertTrue(properties.get(written).isReadOnly(), written);
            assertFalse(properties.get(written).getLabel().isBlank(), written);
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
    @DisplayName("builds the key from stored material, with the stored key type and curve, without native code or KMS")
    void createBuildsTheKeyFromStoredMaterial() throws Exception {
        PublicKey publicKey = newEcPublicKey();
        ComponentModel model = storedEcModel(publicKey);
        model.put("priority", "150");
        model.put("active", "false");

        KeyWrapper key = createdKey(null, model);
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
        assertSame(key, createdKey(null, model));
        model.put("priority", "160");
        KeyWrapper rebuilt = createdKey(null, model);
        assertEquals(160L, rebuilt.getProviderPriority());
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
                KeyWrapper key = createdKey(null, model);
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
        Map<String, String> secrets = new HashMap<>();
        KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(secrets);
        ComponentModel model = storedEcModel();
        model.put("credentialsMode", "access-key");
        model.put("accessKeyId", "AKIAEXAMPLE000000001");
        model.put("secretAccessKey", "${vault.kms-secret}");

        KeyWrapper unresolved = createdKey(KeycloakStubs.session(vault), model);
        assertNotNull(unresolved.getPublicKey(), "the stored key is fine; only signing cannot work");
        Signature signature = Signature.getInstance("SHA384withECDSA");
        signature.initSign((PrivateKey) unresolved.getPrivateKey());
        signature.update(new byte[] {1});
        SignatureException e = assertThrows(SignatureException.class, signature::sign);
        assertTrue(e.getMessage().contains("'Secret access key' refers to vault secret kms-secret, which was not found"),
                e.getMessage());

        // Not kept: once the vault has the secret, the next request gets a key that can sign.
        secrets.put("kms-secret", "resolved-secret-0001");
        KeyWrapper resolved = createdKey(KeycloakStubs.session(vault), model);
        assertFalse(resolved.getPrivateKey().toString().contains("unusable"), resolved.getPrivateKey().toString());
        assertSame(resolved, createdKey(KeycloakStubs.session(vault), model));
        assertEquals(2, vault.lookups().size(), "one lookup per built key, none for a kept key: " + vault.lookups());
        assertFalse(resolved.getPrivateKey().toString().contains("resolved-secret-0001"));
        assertFalse(model.getConfig().toString().contains("resolved-secret-0001"), "never written to the model");
    }

    @Test
    @DisplayName("still yields an active key that fails signing loudly when the stored material is missing or corrupt")
    void createNeverThrows() throws Exception {
        ComponentModel missing = minimalModel();
        ComponentModel corrupt = storedEcModel();
        corrupt.put(KmsKeyAttributes.PUBLIC_KEY_KEY, "not base64 at all!");
        ComponentModel wrongType = storedEcModel();
        wrongType.put(KmsKeyAttributes.KEY_TYPE_KEY, "RSA");
        ComponentModel garbage = minimalModel();
        garbage.put("priority", "not a number");
        garbage.put("algorithm", "ES256");
        garbage.put(KmsKeyAttributes.KEY_TYPE_KEY, "EC");
        garbage.put(KmsKeyAttributes.PUBLIC_KEY_KEY, "AAAA");

        for (ComponentModel model : List.of(missing, corrupt, wrongType, garbage)) {
            KeyWrapper key = createdKey(null, model);
            assertEquals(KeyStatus.ACTIVE, key.getStatus());
            assertNull(key.getPublicKey(), "an unusable key is not published");
            assertNotNull(key.getKid());
            assertSigningFailsWith(key, "save the provider again");
        }
    }

    @Test
    @DisplayName("asks to save again a component stored without key type, as by an older version, whatever its algorithm")
    void componentWithoutStoredKeyTypeIsUnusable() throws Exception {
        for (String algorithm : List.of("RS256", "PS512", "ES384")) {
            ComponentModel model = storedEcModel();
            model.put("algorithm", algorithm);
            model.getConfig().remove(KmsKeyAttributes.KEY_TYPE_KEY);
            model.getConfig().remove(KmsKeyAttributes.CURVE_KEY);

            KeyWrapper key = createdKey(null, model);
            assertNull(key.getPublicKey());
            assertEquals(algorithm, key.getAlgorithm());
            assertEquals("stored-kid", key.getKid());
            assertSigningFailsWith(key, "'keyType' is not stored; save the provider again");
        }
    }

    /** Signs as Keycloak would for the key's algorithm and expects the reason in the failure. */
    private static void assertSigningFailsWith(KeyWrapper key, String reason) throws Exception {
        String jcaAlgorithm = JavaAlgorithm.getJavaAlgorithm(key.getAlgorithmOrDefault());
        Signature signature = Signature.getInstance(jcaAlgorithm);
        signature.initSign((PrivateKey) key.getPrivateKey());
        signature.update(new byte[] {1});
        SignatureException e = assertThrows(SignatureException.class, signature::sign);
        assertTrue(e.getMessage().contains("component-1") && e.getMessage().contains(reason), e.getMessage());
    }

    // Releasing the native signing keys of components that change or go.

    /** A session whose transaction runs what is enlisted after completion when the test ends it. */
    private static final class Transaction {
        final List<KeycloakTransaction> afterCompletion = new ArrayList<>();
        final KeycloakSession session;

        Transaction() {
            KeycloakTransactionManager manager = KeycloakStubs.stub(KeycloakTransactionManager.class,
                    (proxy, method, args) -> {
                        if (method.getName().equals("enlistAfterCompletion")) {
                            afterCompletion.add((KeycloakTransaction) args[0]);
                            return null;
                        }
                        return KeycloakStubs.unsupported(KeycloakTransactionManager.class, method.getName());
                    });
            session = KeycloakStubs.stub(KeycloakSession.class, (proxy, method, args) ->
                    method.getName().equals("getTransactionManager")
                            ? manager
                            : KeycloakStubs.unsupported(KeycloakSession.class, method.getName()));
        }

        void commit() {
            afterCompletion.forEach(KeycloakTransaction::commit);
            afterCompletion.clear();
        }

        void rollback() {
            afterCompletion.forEach(KeycloakTransaction::rollback);
            afterCompletion.clear();
        }
    }

    /** Registers the signing key of a stored component with its own id, as its first signature would. */
    private static long registered(ComponentModel model) {
        return Native.signingKeyHandle(model.getId(),
                SigningConfigJson.forSigning(model, ResolvedSecrets.resolve(null, model), null));
    }

    private static ComponentModel storedComponent() throws Exception {
        ComponentModel model = storedEcModel();
        model.setId("factory-test-" + UUID.randomUUID());
        model.put("credentialsMode", "access-key");
        model.put("accessKeyId", "AKIAFACTORYTEST00001");
        model.put("secretAccessKey", "factory-test-secret");
        return model;
    }

    private static long registeredKeys() throws IOException {
        return JsonSerialization.mapper.readTree(Native.signingKeyStats()).path("keys").asLong();
    }

    private static void assertReleased(long handle) {
        NativeException e = assertThrows(NativeException.class, () -> Native.sign(handle, "SHA384withECDSA", new byte[] {1}));
        assertEquals(NativeErrorCode.INVALID_HANDLE, e.code());
    }

    @Test
    @DisplayName("releases a removed component's signing key when the removing transaction ends, not before")
    void preRemoveReleasesAfterTheTransaction() throws Exception {
        ComponentModel model = storedComponent();
        long keysBefore = registeredKeys();
        long handle = registered(model);
        assertEquals(keysBefore + 1, registeredKeys());

        Transaction transaction = new Transaction();
        factory.preRemove(transaction.session, null, model);
        assertEquals(keysBefore + 1, registeredKeys(), "requests may still sign until the transaction ends");
        transaction.commit();

        assertEquals(keysBefore, registeredKeys());
        assertReleased(handle);
    }

    @Test
    @DisplayName("releases an updated component's signing key when the update ends, committed or rolled back")
    void onUpdateReleasesAfterTheTransaction() throws Exception {
        for (boolean commit : List.of(true, false)) {
            ComponentModel model = storedComponent();
            long keysBefore = registeredKeys();
            long handle = registered(model);

            Transaction transaction = new Transaction();
            factory.onUpdate(transaction.session, null, model, new ComponentModel(model));
            if (commit) {
                transaction.commit();
            } else {
                transaction.rollback();
            }

            assertEquals(keysBefore, registeredKeys(), commit ? "committed" : "rolled back");
            assertReleased(handle);
            registered(model);
            assertEquals(keysBefore + 1, registeredKeys(), "the next signature registers the key again");
            Native.releaseSigningKey(model.getId());
        }
    }

    @Test
    @DisplayName("releases the signing keys of a removed realm's aws-kms components, and of no other component")
    void realmRemovalReleasesItsComponents() throws Exception {
        ComponentModel ours = storedComponent();
        ComponentModel other = storedComponent();
        other.setProviderId("rsa-generated");
        long keysBefore = registeredKeys();
        long ourHandle = registered(ours);
        registered(other);
        List<ProviderEventListener> listeners = new ArrayList<>();
        factory.postInit(KeycloakStubs.stub(KeycloakSessionFactory.class, (proxy, method, args) -> {
            if (method.getName().equals("register")) {
                listeners.add((ProviderEventListener) args[0]);
                return null;
            }
            return KeycloakStubs.unsupported(KeycloakSessionFactory.class, method.getName());
        }));
        RealmModel realm = KeycloakStubs.stub(RealmModel.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "getId":
                    return "realm-1";
                case "getComponentsStream":
                    assertEquals(List.of("realm-1", KeyProvider.class.getName()), List.of(args));
                    return Stream.of(ours, other);
                default:
                    return KeycloakStubs.unsupported(RealmModel.class, method.getName());
            }
        });
        Transaction transaction = new Transaction();
        RealmModel.RealmRemovedEvent removed = new RealmModel.RealmRemovedEvent() {
            @Override
            public RealmModel getRealm() {
                return realm;
            }

            @Override
            public KeycloakSession getKeycloakSession() {
                return transaction.session;
            }
        };

        assertEquals(1, listeners.size());
        listeners.get(0).onEvent(removed);
        transaction.commit();

        assertReleased(ourHandle);
        assertEquals(keysBefore + 1, registeredKeys(), "the other provider's component is not ours to release");
        Native.releaseSigningKey(other.getId());
        assertEquals(keysBefore, registeredKeys());
    }
}
