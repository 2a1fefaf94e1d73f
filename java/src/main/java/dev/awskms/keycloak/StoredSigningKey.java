package dev.awskms.keycloak;

import static dev.awskms.keycloak.KmsKeyProviderFactory.ALGORITHMS;
import static dev.awskms.keycloak.KmsKeyProviderFactory.ALGORITHM_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.CERTIFICATE_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KEY_ARN_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.KID_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.MINTED_CERTIFICATE_KEY;
import static dev.awskms.keycloak.KmsKeyProviderFactory.PUBLIC_KEY_KEY;

import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;

import org.jboss.logging.Logger;
import org.keycloak.common.util.PemUtils;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.Attributes;

/**
 * Builds the {@link KeyWrapper} of an {@code aws-kms} component from the public material that
 * validation stored with it. Pure Java: no native code, no KMS call, so it can run on every
 * request path without any remote dependency.
 */
final class StoredSigningKey {

    private static final Logger LOG = Logger.getLogger(StoredSigningKey.class);

    /** The stored material cannot be turned into a key. The message never contains secrets. */
    static final class InvalidStoredKeyException extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidStoredKeyException(String message) {
            super(message);
        }
    }

    private StoredSigningKey() {
    }

    /**
     * The usable key: public key decoded from the stored SPKI, certificate decoded from the stored
     * PEM (see {@link #certificateOf}), private key a {@link KmsPrivateKey}. If {@code secrets} has
     * a {@linkplain ResolvedSecrets#problem() problem}, the private key fails every signature with
     * it; the public material is still complete.
     *
     * @throws InvalidStoredKeyException if the stored key material is missing, corrupt or does not
     *                                   fit the configured algorithm
     */
    static KeyWrapper fromComponent(ComponentModel model, ResolvedSecrets secrets) throws InvalidStoredKeyException {
        String algorithm = model.get(ALGORITHM_KEY, Algorithm.RS256);
        if (!ALGORITHMS.contains(algorithm)) {
            throw new InvalidStoredKeyException("algorithm '" + algorithm + "' is not one of " + ALGORITHMS);
        }
        String keyType = keyTypeOf(algorithm);
        String kid = require(model, KID_KEY);
        require(model, KEY_ARN_KEY);
        byte[] spki = decodeBase64(require(model, PUBLIC_KEY_KEY));
        PublicKey publicKey = decodePublicKey(spki, keyType);
        String curve = null;
        if (KeyType.EC.equals(keyType)) {
            curve = curveOf((ECPublicKey) publicKey);
            String expected = curveFor(algorithm);
            if (!expected.equals(curve)) {
                throw new InvalidStoredKeyException("the stored key is on curve " + curve + " but " + algorithm
                        + " needs " + expected);
            }
        }
        KeyWrapper key = baseKey(model, algorithm, keyType, kid);
        key.setCurve(curve);
        key.setPublicKey(publicKey);
        X509Certificate certificate = certificateOf(model, kid, spki, publicKey);
        if (certificate != null) {
            key.setCertificate(certificate);
            key.setCertificateChain(List.of(certificate));
        }
        String unresolved = secrets.problem().orElse(null);
        key.setPrivateKey(unresolved == null
                ? KmsPrivateKey.usable(keyType, model.getId(), kid, NativeConfigJson.forSigning(model, secrets))
                : KmsPrivateKey.unusable(keyType, model.getId(), kid, unresolved));
        return key;
    }

    /**
     * The stored certificate: the uploaded one ({@code certificate}) or else the minted one
     * ({@code mintedCertificate}), decoded with Keycloak's {@link PemUtils}. A certificate that
     * does not decode, or whose public key is not the stored one, is left out with a warning: the
     * key still signs, it is only published without {@code x5c}.
     *
     * @return null if there is none or it is unusable
     */
    static X509Certificate certificateOf(ComponentModel model, String kid, byte[] spki, PublicKey publicKey) {
        String field = CERTIFICATE_KEY;
        String pem = model.get(CERTIFICATE_KEY);
        if (pem == null || pem.isBlank()) {
            field = MINTED_CERTIFICATE_KEY;
            pem = model.get(MINTED_CERTIFICATE_KEY);
        }
        if (pem == null || pem.isBlank()) {
            return null;
        }
        X509Certificate certificate;
        try {
            certificate = PemUtils.decodeCertificate(pem);
        } catch (RuntimeException e) {
            // Only the class: a parser's message could quote what was stored.
            LOG.warnf("aws-kms key provider %s (kid %s): the stored '%s' does not decode as an X.509 certificate "
                    + "(%s); the key is used without a certificate. Save the provider again to replace it.",
                    model.getId(), kid, field, e.getClass().getSimpleName());
            return null;
        }
        if (certificate == null) {
            return null;
        }
        PublicKey certified = certificate.getPublicKey();
        if (!Arrays.equals(certified.getEncoded(), spki) && !publicKey.equals(certified)) {
            LOG.warnf("aws-kms key provider %s (kid %s): the stored '%s' is for another public key than the KMS "
                    + "key; the key is used without a certificate. Save the provider again to replace it.",
                    model.getId(), kid, field);
            return null;
        }
        return certificate;
    }

    /**
     * A key that is active like the configured one but fails every signature with {@code reason}.
     * It has no public key, so it is not published in the realm's JWKS.
     */
    static KeyWrapper unusable(ComponentModel model, String reason) {
        String configured = model.get(ALGORITHM_KEY, Algorithm.RS256);
        // An algorithm outside the list cannot pass validation; RS256 is Keycloak's default.
        String algorithm = ALGORITHMS.contains(configured) ? configured : Algorithm.RS256;
        String keyType = keyTypeOf(algorithm);
        String storedKid = model.get(KID_KEY);
        // Keycloak lists keys by kid; give a stand-in that says what it is.
        String kid = storedKid == null || storedKid.isBlank() ? "aws-kms-unusable-" + model.getId() : storedKid;
        KeyWrapper key = baseKey(model, algorithm, keyType, kid);
        key.setCurve(KeyType.EC.equals(keyType) ? curveFor(algorithm) : null);
        key.setPrivateKey(KmsPrivateKey.unusable(keyType, model.getId(), kid, reason));
        return key;
    }

    private static byte[] decodeBase64(String base64) throws InvalidStoredKeyException {
        try {
            return Base64.getDecoder().decode(base64.trim());
        } catch (IllegalArgumentException e) {
            throw new InvalidStoredKeyException("the stored public key is not valid base64");
        }
    }

    /** Decodes an SPKI (X.509 SubjectPublicKeyInfo DER) as an RSA or EC public key. */
    static PublicKey decodePublicKey(byte[] spki, String keyType) throws InvalidStoredKeyException {
        try {
            return KeyFactory.getInstance(keyType).generatePublic(new X509EncodedKeySpec(spki));
        } catch (GeneralSecurityException | ClassCastException e) {
            throw new InvalidStoredKeyException("the stored public key is not an " + keyType
                    + " SubjectPublicKeyInfo: " + e.getMessage());
        }
    }

    /** {@code RSA} for RS* and PS*, {@code EC} for ES*. */
    static String keyTypeOf(String algorithm) {
        return algorithm.startsWith("ES") ? KeyType.EC : KeyType.RSA;
    }

    private static KeyWrapper baseKey(ComponentModel model, String algorithm, String keyType, String kid) {
        KeyWrapper key = new KeyWrapper();
        key.setProviderId(model.getId());
        key.setProviderPriority(priorityOf(model));
        key.setKid(kid);
        key.setAlgorithm(algorithm);
        key.setType(keyType);
        key.setUse(KeyUse.SIG);
        key.setStatus(KeyStatus.from(model.get(Attributes.ACTIVE_KEY, true), model.get(Attributes.ENABLED_KEY, true)));
        return key;
    }

    /**
     * The configured priority. Validation guarantees a number; anything else (a hand-edited
     * database) counts as 0 rather than making {@code create} throw.
     */
    private static long priorityOf(ComponentModel model) {
        try {
            return model.get(Attributes.PRIORITY_KEY, 0L);
        } catch (NumberFormatException e) {
            return 0L;
        }
    }

    private static String require(ComponentModel model, String key) throws InvalidStoredKeyException {
        String value = model.get(key);
        if (value == null || value.isBlank()) {
            throw new InvalidStoredKeyException("'" + key + "' is not stored");
        }
        return value;
    }

    /** The JOSE curve name ({@code crv}) for an EC public key. */
    private static String curveOf(ECPublicKey publicKey) throws InvalidStoredKeyException {
        int fieldSize = publicKey.getParams().getCurve().getField().getFieldSize();
        switch (fieldSize) {
            case 256:
                return "P-256";
            case 384:
                return "P-384";
            case 521:
                return "P-521";
            default:
                throw new InvalidStoredKeyException("the stored EC key has an unsupported field size " + fieldSize);
        }
    }

    private static String curveFor(String ecAlgorithm) {
        switch (ecAlgorithm) {
            case Algorithm.ES256:
                return "P-256";
            case Algorithm.ES384:
                return "P-384";
            default:
                return "P-521";
        }
    }
}
