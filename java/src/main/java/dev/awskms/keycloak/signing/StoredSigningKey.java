package dev.awskms.keycloak.signing;

import static dev.awskms.keycloak.signing.KmsKeyAttributes.ALGORITHMS;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.ALGORITHM_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CERTIFICATE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.CURVE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_ARN_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KEY_TYPE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.KID_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.MINTED_CERTIFICATE_KEY;
import static dev.awskms.keycloak.signing.KmsKeyAttributes.PUBLIC_KEY_KEY;

import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;

import org.jboss.logging.Logger;
import org.keycloak.common.util.PemUtils;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyStatus;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.Attributes;

/**
 * Builds the {@link KeyWrapper} of an {@code aws-kms} component from the public material that
 * validation stored with it. Pure Java: no native code, no KMS call, so it can run on every
 * request path without any remote dependency.
 *
 * <p>The key type and curve are read as stored, from the native library's description of the key,
 * never derived here from the algorithm: which algorithm needs which key is the native library's
 * rule, checked when the component is saved.
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

    /** The type of an unusable key whose component has no stored type (saved by an older version). */
    static final String UNKNOWN_KEY_TYPE = "unknown";

    private StoredSigningKey() {
    }

    /**
     * The usable key: public key decoded from the stored SPKI, certificate decoded from the stored
     * PEM (see {@link #certificateOf}), private key a {@link KmsPrivateKey}. If {@code secrets} has
     * a {@linkplain ResolvedSecrets#problem() problem}, the private key fails every signature with
     * it; the public material is still complete.
     *
     * @param realmName the name of the component's realm, to which the server policy holds the key
     *                  when it is first used; null if unknown
     * @throws InvalidStoredKeyException if the stored key material is missing or corrupt, or the
     *                                   algorithm is not one of the form's
     */
    static KeyWrapper fromComponent(ComponentModel model, ResolvedSecrets secrets, String realmName)
            throws InvalidStoredKeyException {
        String algorithm = model.get(ALGORITHM_KEY, Algorithm.RS256);
        if (!ALGORITHMS.contains(algorithm)) {
            throw new InvalidStoredKeyException("algorithm '" + algorithm + "' is not one of " + ALGORITHMS);
        }
        String kid = require(model, KID_KEY);
        require(model, KEY_ARN_KEY);
        String keyType = require(model, KEY_TYPE_KEY);
        byte[] spki = decodeBase64(require(model, PUBLIC_KEY_KEY));
        PublicKey publicKey = decodePublicKey(spki, keyType);
        KeyWrapper key = baseKey(model, algorithm, keyType, kid);
        key.setCurve(storedCurve(model));
        key.setPublicKey(publicKey);
        X509Certificate certificate = certificateOf(model, kid, spki, publicKey);
        if (certificate != null) {
            key.setCertificate(certificate);
            key.setCertificateChain(List.of(certificate));
        }
        String unresolved = secrets.problem().orElse(null);
        key.setPrivateKey(unresolved == null
                ? KmsPrivateKey.usable(keyType, model.getId(), realmName, kid,
                        SigningConfigJson.forSigning(model, secrets, realmName))
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
     *
     * <p>Its type is the stored one when there is one; otherwise a placeholder, because working
     * the type out from the algorithm would repeat the native library's rule, and nothing depends
     * on it: a key without a public key is neither published nor used to verify, and
     * {@link KmsSignatureSpi} lets an unusable key through whatever its type, so that signing
     * fails with {@code reason}.
     */
    static KeyWrapper unusable(ComponentModel model, String reason) {
        String configured = model.get(ALGORITHM_KEY, Algorithm.RS256);
        // An algorithm outside the list cannot pass validation; RS256 is Keycloak's default.
        String algorithm = ALGORITHMS.contains(configured) ? configured : Algorithm.RS256;
        String storedKeyType = model.get(KEY_TYPE_KEY);
        String keyType = storedKeyType == null || storedKeyType.isBlank() ? UNKNOWN_KEY_TYPE : storedKeyType;
        String storedKid = model.get(KID_KEY);
        // Keycloak lists keys by kid; give a stand-in that says what it is.
        String kid = storedKid == null || storedKid.isBlank() ? "aws-kms-unusable-" + model.getId() : storedKid;
        KeyWrapper key = baseKey(model, algorithm, keyType, kid);
        key.setCurve(storedCurve(model));
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

    /** Decodes an SPKI (X.509 SubjectPublicKeyInfo DER) with the JCA key factory of the stored key type. */
    static PublicKey decodePublicKey(byte[] spki, String keyType) throws InvalidStoredKeyException {
        try {
            return KeyFactory.getInstance(keyType).generatePublic(new X509EncodedKeySpec(spki));
        } catch (GeneralSecurityException e) {
            throw new InvalidStoredKeyException("the stored public key is not an " + keyType
                    + " SubjectPublicKeyInfo: " + e.getMessage());
        }
    }

    /** The stored JOSE curve; null for a key without one (RSA). */
    private static String storedCurve(ComponentModel model) {
        String curve = model.get(CURVE_KEY);
        return curve == null || curve.isBlank() ? null : curve;
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
}
