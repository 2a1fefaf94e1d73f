package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeErrorCode;
import dev.awskms.keycloak.internal.NativeException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.AsymmetricSignatureSignerContext;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.util.JsonSerialization;

/** Signing through the JCA, end to end: Java, the native library and the KMS emulator. */
@DisplayName("Signing with a KMS key")
class KmsSigningTest {

    private static final byte[] MESSAGE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9".getBytes(StandardCharsets.US_ASCII);

    private static KmsEmulator kms;
    private final KmsKeyProviderFactory factory = new KmsKeyProviderFactory();

    @BeforeAll
    static void startEmulator() throws Exception {
        KmsJcaProvider.register();
        KeycloakStubs.installCrypto();
        kms = KmsEmulator.start(
                "alias/java-rsa=RSA_2048",
                "alias/java-ec256=ECC_NIST_P256",
                "alias/java-ec384=ECC_NIST_P384",
                "alias/java-ec521=ECC_NIST_P521");
    }

    @AfterAll
    static void stopEmulator() throws Exception {
        if (kms != null) {
            kms.close();
        }
    }

    @AfterEach
    void clearFaults() throws Exception {
        kms.clearFaults();
    }

    /** Saves a component as the admin console would, then builds its key as a request would. */
    private KeyWrapper savedKey(String alias, String algorithm) {
        ComponentModel model = kms.component("component-" + alias.replace('/', '-') + "-" + algorithm, alias, algorithm);
        factory.validateConfiguration(null, null, model);
        return factory.create(null, model).getKeysStream().findFirst().orElseThrow();
    }

    @Test
    @DisplayName("describes a key with its ARN, spec, key type, curve, public key, kid, signing algorithms and a minted certificate")
    void describesTheKey() throws Exception {
        ComponentModel model = kms.component("component-describe", "alias/java-ec256", "ES256");
        JsonNode described = JsonSerialization.mapper.readTree(
                Native.describeSigningKey(SigningConfigJson.forValidation(model, ResolvedSecrets.resolve(null, model), null)));
        assertEquals(kms.keyArn("alias/java-ec256"), described.get("keyArn").asText());
        assertEquals("ECC_NIST_P256", described.get("keySpec").asText());
        assertEquals("EC", described.get("keyType").asText());
        assertEquals("P-256", described.get("curve").asText());
        assertTrue(described.get("publicKey").asText().length() > 50);
        assertTrue(described.get("kid").asText().matches("[A-Za-z0-9_-]{43}"), described.get("kid").asText());
        assertTrue(described.get("signingAlgorithms").toString().contains("ECDSA_SHA_256"), described.toString());
        assertTrue(described.get("certificateMinted").asBoolean(), "no certificate was uploaded");
        assertTrue(described.get("certificate").asText().startsWith("-----BEGIN CERTIFICATE-----"));
    }

    @ParameterizedTest(name = "{0} with {2}")
    @CsvSource({
            "RS256, alias/java-rsa, SHA256withRSA",
            "RS384, alias/java-rsa, SHA384withRSA",
            "RS512, alias/java-rsa, SHA512withRSA",
            "ES256, alias/java-ec256, SHA256withECDSA",
            "ES384, alias/java-ec384, SHA384withECDSA",
            "ES512, alias/java-ec521, SHA512withECDSA",
    })
    @DisplayName("produces signatures the JDK verifies with the stored public key")
    void signsAndTheJdkVerifies(String algorithm, String alias, String jcaAlgorithm) throws Exception {
        KeyWrapper key = savedKey(alias, algorithm);
        byte[] signature = sign(jcaAlgorithm, (PrivateKey) key.getPrivateKey());

        Signature verifier = Signature.getInstance(jcaAlgorithm);
        verifier.initVerify((PublicKey) key.getPublicKey());
        verifier.update(MESSAGE);
        assertTrue(verifier.verify(signature), algorithm + " signature does not verify");
        assertTrue(verifier.getProvider().getName().startsWith("Sun"), verifier.getProvider().getName());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "PS256, SHA256withRSAandMGF1, SHA-256, 32",
            "PS384, SHA384withRSAandMGF1, SHA-384, 48",
            "PS512, SHA512withRSAandMGF1, SHA-512, 64",
    })
    @DisplayName("produces RSASSA-PSS signatures with salt = digest length that the JDK verifies")
    void signsPss(String algorithm, String jcaAlgorithm, String digest, int saltLength) throws Exception {
        KeyWrapper key = savedKey("alias/java-rsa", algorithm);
        byte[] signature = sign(jcaAlgorithm, (PrivateKey) key.getPrivateKey());

        Signature verifier = Signature.getInstance("RSASSA-PSS");
        verifier.setParameter(new PSSParameterSpec(digest, "MGF1", new MGF1ParameterSpec(digest), saltLength, 1));
        verifier.initVerify((PublicKey) key.getPublicKey());
        verifier.update(MESSAGE);
        assertTrue(verifier.verify(signature), algorithm + " signature does not verify");
    }

    @Test
    @DisplayName("works through Keycloak's own signer context, as on the token path")
    void signsThroughKeycloaksSignerContext() throws Exception {
        for (String algorithm : new String[] {"RS256", "PS256"}) {
            KeyWrapper key = savedKey("alias/java-rsa", algorithm);
            byte[] signature = new AsymmetricSignatureSignerContext(key).sign(MESSAGE);
            Signature verifier = Signature.getInstance("RS256".equals(algorithm) ? "SHA256withRSA" : "RSASSA-PSS");
            if ("PS256".equals(algorithm)) {
                verifier.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
            }
            verifier.initVerify((PublicKey) key.getPublicKey());
            verifier.update(MESSAGE);
            assertTrue(verifier.verify(signature), algorithm);
        }
    }

    @Test
    @DisplayName("fails with a SignatureException naming the error code while KMS is down, and recovers after")
    void failsLoudlyWhileKmsIsDown() throws Exception {
        KeyWrapper key = savedKey("alias/java-rsa", "RS256");
        PrivateKey handle = (PrivateKey) key.getPrivateKey();
        sign("SHA256withRSA", handle);

        kms.setFaults("{\"mode\":\"down\"}");
        SignatureException e = assertThrows(SignatureException.class, () -> sign("SHA256withRSA", handle));
        NativeException cause = assertInstanceOf(NativeException.class, e.getCause());
        assertEquals(NativeErrorCode.NETWORK, cause.code(), cause.getMessage());
        assertTrue(cause.retryable());
        assertTrue(e.getMessage().contains("NETWORK"), e.getMessage());
        assertTrue(e.getMessage().contains(key.getKid()), e.getMessage());

        kms.clearFaults();
        Signature verifier = Signature.getInstance("SHA256withRSA");
        verifier.initVerify((PublicKey) key.getPublicKey());
        verifier.update(MESSAGE);
        assertTrue(verifier.verify(sign("SHA256withRSA", handle)), "signing works again after KMS is back");
    }

    @Test
    @DisplayName("signs again after its component's native key was released, by registering the key anew")
    void signsAfterItsKeyWasReleased() throws Exception {
        KeyWrapper key = savedKey("alias/java-ec256", "ES256");
        PrivateKey handle = (PrivateKey) key.getPrivateKey();
        sign("SHA256withECDSA", handle);

        Native.releaseSigningKey(key.getProviderId());
        byte[] signature = sign("SHA256withECDSA", handle);

        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify((PublicKey) key.getPublicKey());
        verifier.update(MESSAGE);
        assertTrue(verifier.verify(signature));
    }

    @Test
    @DisplayName("signs from many threads at once with one shared key, as concurrent token requests do")
    void signsConcurrently() throws Exception {
        KeyWrapper key = savedKey("alias/java-ec256", "ES256");
        PrivateKey handle = (PrivateKey) key.getPrivateKey();
        ExecutorService threads = Executors.newFixedThreadPool(8);
        try {
            List<Future<byte[]>> signatures = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                signatures.add(threads.submit(() -> sign("SHA256withECDSA", handle)));
            }
            for (Future<byte[]> signature : signatures) {
                Signature verifier = Signature.getInstance("SHA256withECDSA");
                verifier.initVerify((PublicKey) key.getPublicKey());
                verifier.update(MESSAGE);
                assertTrue(verifier.verify(signature.get(60, TimeUnit.SECONDS)));
            }
        } finally {
            threads.shutdownNow();
        }
    }

    @Test
    @DisplayName("fails with a SignatureException naming the code when KMS throttles")
    void failsWhenThrottled() throws Exception {
        KeyWrapper key = savedKey("alias/java-ec256", "ES256");
        kms.setFaults("{\"mode\":\"throttle\",\"operations\":[\"Sign\"]}");
        SignatureException e = assertThrows(SignatureException.class,
                () -> sign("SHA256withECDSA", (PrivateKey) key.getPrivateKey()));
        assertTrue(e.getMessage().contains("THROTTLED"), e.getMessage());
    }

    private static byte[] sign(String jcaAlgorithm, PrivateKey key) throws Exception {
        Signature signer = Signature.getInstance(jcaAlgorithm);
        signer.initSign(key);
        assertInstanceOf(KmsJcaProvider.class, signer.getProvider());
        signer.update(MESSAGE);
        return signer.sign();
    }
}
