package dev.awskms.keycloak.publickeys;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import org.jboss.logging.Logger;
import org.keycloak.common.crypto.CryptoIntegration;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.util.JsonSerialization;

/**
 * Keycloak {@link KeyWrapper}s from the native JWKS download: the same fields Keycloak's
 * {@code JWKSUtils.getKeyWrappersForUse(jwks, use, true)} sets (kid, algorithm, type, curve, use =
 * the requested use, the public key), plus the {@code x5c} certificate chain. The native side has
 * already downloaded, filtered and checked the keys; this class only turns SubjectPublicKeyInfo
 * and certificate DER into JCA objects, once per download.
 */
final class JwksKeyWrappers {

    private static final Logger LOG = Logger.getLogger(JwksKeyWrappers.class);

    private JwksKeyWrappers() {
    }

    /**
     * Downloads a JWKS (the native side applies the timeouts, the size cap, the trust and refuses
     * redirects) and returns its keys for {@code use}.
     *
     * @param use    {@link KeyUse#SIG} or {@link KeyUse#ENC}: keys without {@code use} count as this use
     * @param source the model key, for log lines
     * @throws dev.awskms.keycloak.internal.NativeException when the download or the document fails
     */
    static PublicKeysWrapper download(String url, KeyUse use, String source) throws IOException {
        return fromNativeJson(Native.fetchJwks(url, use.getSpecName()), use, source);
    }

    /** Parses the JSON of {@link Native#fetchJwks}. */
    static PublicKeysWrapper fromNativeJson(String json, KeyUse use, String source) throws IOException {
        JsonNode document = JsonSerialization.mapper.readTree(json);
        for (JsonNode skipped : document.path("skipped")) {
            LOG.debugf("Ignoring JWK key '%s' of %s: %s", text(skipped, "kid"), source, text(skipped, "reason"));
        }
        List<KeyWrapper> keys = new ArrayList<>();
        for (JsonNode key : document.path("keys")) {
            try {
                keys.add(keyWrapper(key, use));
            } catch (GeneralSecurityException | RuntimeException e) {
                // As JWKSUtils: a key Java cannot load is left out, not the whole set.
                LOG.debugf(e, "Ignoring JWK key '%s' of %s. Failed to load key.", text(key, "kid"), source);
            }
        }
        return new PublicKeysWrapper(Collections.unmodifiableList(keys));
    }

    private static KeyWrapper keyWrapper(JsonNode key, KeyUse use) throws GeneralSecurityException {
        String type = text(key, "kty");
        String curve = text(key, "crv");
        KeyWrapper wrapper = new KeyWrapper();
        wrapper.setKid(text(key, "kid"));
        String algorithm = text(key, "alg");
        if (algorithm != null) {
            wrapper.setAlgorithm(algorithm);
        }
        if (curve != null) {
            wrapper.setCurve(curve);
        }
        wrapper.setType(type);
        wrapper.setUse(use);
        wrapper.setPublicKey(publicKey(type, curve, Base64.getDecoder().decode(required(key, "spki"))));
        List<X509Certificate> chain = certificateChain(key.path("x5c"));
        if (!chain.isEmpty()) {
            wrapper.setCertificate(chain.get(0));
            wrapper.setCertificateChain(chain);
        }
        wrapper.setIsDefaultClientCertificate(false);
        return wrapper;
    }

    /**
     * The JCA key for a SubjectPublicKeyInfo, from the key factories Keycloak's {@code JWKParser}
     * uses, so that Keycloak verifies with the same implementation as with its own storage: RSA
     * from the installed providers, EC from Keycloak's crypto provider ({@code ECDSA}: BouncyCastle,
     * or BC-FIPS in FIPS mode; with the JDK's EC key instead, Keycloak's verifier ran SunEC's ECDSA,
     * ~1.3 ms more CPU per ES256 client assertion, BENCHMARKS.md), and for OKP the factory named by
     * the curve ({@code Ed25519}), as Keycloak's {@code EdECUtils}.
     */
    static PublicKey publicKey(String type, String curve, byte[] spki) throws GeneralSecurityException {
        KeyFactory keyFactory;
        if (KeyType.RSA.equals(type)) {
            keyFactory = KeyFactory.getInstance("RSA");
        } else if (KeyType.EC.equals(type)) {
            keyFactory = CryptoIntegration.getProvider().getKeyFactory("ECDSA");
        } else if (KeyType.OKP.equals(type) && curve != null) {
            keyFactory = KeyFactory.getInstance(curve); // "Ed25519", as Keycloak's EdECUtils
        } else {
            throw new GeneralSecurityException("unsupported key type " + type + " (curve " + curve + ")");
        }
        return keyFactory.generatePublic(new X509EncodedKeySpec(spki));
    }

    private static List<X509Certificate> certificateChain(JsonNode x5c) throws GeneralSecurityException {
        if (!x5c.isArray() || x5c.isEmpty()) {
            return List.of();
        }
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        List<X509Certificate> chain = new ArrayList<>();
        for (JsonNode certificate : x5c) {
            byte[] der = Base64.getDecoder().decode(certificate.asText());
            chain.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)));
        }
        return chain;
    }

    private static String required(JsonNode node, String field) {
        String value = text(node, field);
        if (value == null) {
            throw new IllegalArgumentException("the native JWKS result has no '" + field + "'");
        }
        return value;
    }

    private static String text(JsonNode node, String field) {
        JsonNode value = node.get(field);
        return value == null || value.isNull() ? null : value.asText();
    }
}
