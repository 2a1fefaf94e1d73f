package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.NotSerializableException;
import java.io.ObjectOutputStream;
import java.security.InvalidAlgorithmParameterException;
import java.security.InvalidKeyException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.SignatureException;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Arrays;
import java.util.List;

import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@DisplayName("The JCA provider")
class KmsJcaProviderTest {

    private static final List<String> RSA_ALGORITHMS = List.of(
            "SHA256withRSA", "SHA384withRSA", "SHA512withRSA",
            "SHA256withRSAandMGF1", "SHA384withRSAandMGF1", "SHA512withRSAandMGF1");
    private static final List<String> EC_ALGORITHMS = List.of("SHA256withECDSA", "SHA384withECDSA", "SHA512withECDSA");
    private static final String SECRET = "do-not-print-this-secret";

    private static KeyPair softwareRsa;
    private static KeyPair softwareEc;

    @BeforeAll
    static void setUp() throws Exception {
        KmsJcaProvider.register();
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA");
        rsa.initialize(2048);
        softwareRsa = rsa.generateKeyPair();
        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC");
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        softwareEc = ec.generateKeyPair();
    }

    private static KmsPrivateKey handle(String family) {
        return KmsPrivateKey.usable(family, "component-1", "kid-1", "{\"secretAccessKey\":\"" + SECRET + "\"}");
    }

    @Test
    @DisplayName("is installed once, last, whatever the number of registrations")
    void registersOnce() {
        Provider first = KmsJcaProvider.register();
        Provider second = KmsJcaProvider.register();
        assertSame(first, second);
        Provider[] providers = Security.getProviders();
        long ours = Arrays.stream(providers).filter(p -> p instanceof KmsJcaProvider).count();
        assertEquals(1, ours);
        assertSame(first, providers[providers.length - 1], "appended, i.e. least preferred");
        assertEquals(KmsJcaProvider.NAME, first.getName());
    }

    @Test
    @DisplayName("is chosen for a KMS handle by every supported algorithm on the plain JDK")
    void chosenForHandlesOnThePlainJdk() throws Exception {
        assertNull(Security.getProvider("BC"), "BouncyCastle must not be installed for this test");
        assertChosenForHandles();
    }

    @ParameterizedTest(name = "BouncyCastle at position {0}")
    @ValueSource(ints = {1, Integer.MAX_VALUE})
    @DisplayName("is chosen for a KMS handle by every supported algorithm with BouncyCastle installed, as in Keycloak")
    void chosenForHandlesWithBouncyCastle(int position) throws Exception {
        Security.insertProviderAt(new BouncyCastleProvider(), position);
        try {
            assertChosenForHandles();
        } finally {
            Security.removeProvider(BouncyCastleProvider.PROVIDER_NAME);
        }
    }

    private static void assertChosenForHandles() throws Exception {
        for (String algorithm : RSA_ALGORITHMS) {
            assertChosen(algorithm, handle("RSA"));
        }
        for (String algorithm : EC_ALGORITHMS) {
            assertChosen(algorithm, handle("EC"));
        }
    }

    private static void assertChosen(String algorithm, PrivateKey key) throws Exception {
        Signature signature = Signature.getInstance(algorithm);
        signature.initSign(key);
        assertInstanceOf(KmsJcaProvider.class, signature.getProvider(), algorithm);
    }

    @Test
    @DisplayName("is never chosen for software RSA or EC keys on the plain JDK")
    void neverChosenForSoftwareKeysOnThePlainJdk() throws Exception {
        assertNull(Security.getProvider("BC"), "BouncyCastle must not be installed for this test");
        for (String algorithm : List.of("SHA256withRSA", "SHA384withRSA", "SHA512withRSA")) {
            assertEquals("SunRsaSign", providerFor(algorithm, softwareRsa.getPrivate()), algorithm);
        }
        for (String algorithm : EC_ALGORITHMS) {
            assertEquals("SunEC", providerFor(algorithm, softwareEc.getPrivate()), algorithm);
        }
        // The JDK has no SHA256withRSAandMGF1 (Keycloak gets it from BouncyCastle): a software key
        // must then fail to find a provider rather than reach KMS code.
        for (String algorithm : List.of("SHA256withRSAandMGF1", "SHA384withRSAandMGF1", "SHA512withRSAandMGF1")) {
            Signature signature = Signature.getInstance(algorithm);
            assertThrows(InvalidKeyException.class, () -> signature.initSign(softwareRsa.getPrivate()), algorithm);
        }
    }

    @Test
    @DisplayName("is never chosen for software RSA or EC keys with BouncyCastle installed")
    void neverChosenForSoftwareKeysWithBouncyCastle() throws Exception {
        Security.insertProviderAt(new BouncyCastleProvider(), 1);
        try {
            for (String algorithm : RSA_ALGORITHMS) {
                assertNotEquals(KmsJcaProvider.NAME, providerFor(algorithm, softwareRsa.getPrivate()), algorithm);
            }
            for (String algorithm : EC_ALGORITHMS) {
                assertNotEquals(KmsJcaProvider.NAME, providerFor(algorithm, softwareEc.getPrivate()), algorithm);
            }
            assertEquals("BC", providerFor("SHA256withRSAandMGF1", softwareRsa.getPrivate()));
        } finally {
            Security.removeProvider(BouncyCastleProvider.PROVIDER_NAME);
        }
    }

    private static String providerFor(String algorithm, PrivateKey key) throws Exception {
        Signature signature = Signature.getInstance(algorithm);
        signature.initSign(key);
        return signature.getProvider().getName();
    }

    @Test
    @DisplayName("refuses a handle of the wrong key family")
    void refusesTheWrongFamily() throws NoSuchAlgorithmException {
        Signature ecdsa = Signature.getInstance("SHA256withECDSA");
        assertThrows(InvalidKeyException.class, () -> ecdsa.initSign(handle("RSA")));
        Signature rsa = Signature.getInstance("SHA256withRSA");
        assertThrows(InvalidKeyException.class, () -> rsa.initSign(handle("EC")));
    }

    @Test
    @DisplayName("refuses to verify, so verification stays with the JDK's providers")
    void refusesToVerify() throws Exception {
        Signature ours = Signature.getInstance("SHA256withRSA", KmsJcaProvider.NAME);
        assertThrows(InvalidKeyException.class, () -> ours.initVerify(softwareRsa.getPublic()));
    }

    @Test
    @DisplayName("accepts only the PSS parameters JWS uses: MGF1 with the same digest and salt = digest length")
    void checksPssParameters() throws Exception {
        Signature ps256 = Signature.getInstance("SHA256withRSAandMGF1", KmsJcaProvider.NAME);
        ps256.initSign(handle("RSA"));
        assertDoesNotThrow(() -> ps256.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1)));
        assertDoesNotThrow(() -> ps256.setParameter(new PSSParameterSpec("SHA256", "MGF1", new MGF1ParameterSpec("SHA256"), 32, 1)));
        assertThrows(InvalidAlgorithmParameterException.class,
                () -> ps256.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 20, 1)));
        assertThrows(InvalidAlgorithmParameterException.class,
                () -> ps256.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA1, 32, 1)));
        assertThrows(InvalidAlgorithmParameterException.class,
                () -> ps256.setParameter(new PSSParameterSpec("SHA-384", "MGF1", MGF1ParameterSpec.SHA384, 48, 1)));
        assertThrows(InvalidAlgorithmParameterException.class,
                () -> ps256.setParameter(new ECGenParameterSpec("secp256r1")));
        assertEquals(PSSParameterSpec.class.getName(),
                ps256.getParameters().getParameterSpec(PSSParameterSpec.class).getClass().getName());

        Signature rs256 = Signature.getInstance("SHA256withRSA", KmsJcaProvider.NAME);
        assertThrows(InvalidAlgorithmParameterException.class,
                () -> rs256.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1)));
    }

    @Test
    @DisplayName("keeps the handle's credentials out of toString and refuses to serialise it")
    void handleDoesNotLeakItsConfiguration() {
        KmsPrivateKey key = handle("RSA");
        assertFalse(key.toString().contains(SECRET), key.toString());
        assertNull(key.getEncoded());
        assertNull(key.getFormat());
        assertEquals("RSA", key.getAlgorithm());
        assertThrows(NotSerializableException.class,
                () -> new ObjectOutputStream(new ByteArrayOutputStream()).writeObject(key));
    }

    @Test
    @DisplayName("lets an unusable key of any type through every algorithm, so that signing fails with its reason")
    void unusableKeyOfAnyTypeFailsWithItsReason() throws Exception {
        for (String algorithm : List.of("SHA256withRSA", "SHA384withRSAandMGF1", "SHA512withECDSA")) {
            Signature signature = Signature.getInstance(algorithm);
            signature.initSign(KmsPrivateKey.unusable(StoredSigningKey.UNKNOWN_KEY_TYPE, "component-8", "kid-8",
                    "'keyType' is not stored"));
            assertInstanceOf(KmsJcaProvider.class, signature.getProvider(), algorithm);
            signature.update(new byte[] {1});
            SignatureException e = assertThrows(SignatureException.class, signature::sign, algorithm);
            assertTrue(e.getMessage().contains("'keyType' is not stored"), e.getMessage());
        }
    }

    @Test
    @DisplayName("fails signing with a SignatureException naming the reason for an unusable key, without native calls")
    void unusableKeyFailsLoudly() throws Exception {
        Signature signature = Signature.getInstance("SHA256withRSA");
        signature.initSign(KmsPrivateKey.unusable("RSA", "component-9", "kid-9", "'publicKey' is not stored"));
        signature.update(new byte[] {1, 2, 3});
        SignatureException e = assertThrows(SignatureException.class, signature::sign);
        assertTrue(e.getMessage().contains("component-9") && e.getMessage().contains("'publicKey' is not stored"),
                e.getMessage());
    }
}
