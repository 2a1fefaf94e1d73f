package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.X509EncodedKeySpec;

import dev.awskms.keycloak.KeycloakStubs;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.common.crypto.CryptoIntegration;
import org.keycloak.crypto.KeyType;

@DisplayName("Keys built from a downloaded JWKS")
class JwksKeyWrappersTest {

    @BeforeAll
    static void crypto() {
        KeycloakStubs.installCrypto();
    }

    @Test
    @DisplayName("an EC key comes from Keycloak's crypto provider, as JWKParser's does, so Keycloak verifies with the same implementation")
    void anEcKeyComesFromKeycloaksCryptoProvider() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        byte[] spki = generator.generateKeyPair().getPublic().getEncoded();

        PublicKey key = JwksKeyWrappers.publicKey(KeyType.EC, "P-256", spki);

        PublicKey keycloaks = CryptoIntegration.getProvider().getKeyFactory("ECDSA")
                .generatePublic(new X509EncodedKeySpec(spki));
        assertEquals(keycloaks.getClass(), key.getClass());
        assertArrayEquals(spki, key.getEncoded());
    }

    @Test
    @DisplayName("an RSA key comes from the installed providers' RSA factory, as JWKParser's does")
    void anRsaKeyComesFromTheInstalledProviders() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048);
        PublicKey generated = generator.generateKeyPair().getPublic();

        PublicKey key = JwksKeyWrappers.publicKey(KeyType.RSA, null, generated.getEncoded());

        assertEquals(generated.getClass(), key.getClass());
        assertArrayEquals(generated.getEncoded(), key.getEncoded());
    }
}
