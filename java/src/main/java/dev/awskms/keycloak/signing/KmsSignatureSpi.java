package dev.awskms.keycloak.signing;

import java.io.ByteArrayOutputStream;
import java.security.AlgorithmParameters;
import java.security.InvalidAlgorithmParameterException;
import java.security.InvalidKeyException;
import java.security.InvalidParameterException;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SignatureException;
import java.security.SignatureSpi;
import java.security.spec.AlgorithmParameterSpec;
import java.security.spec.InvalidParameterSpecException;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Locale;

/**
 * One JCA signature algorithm backed by KMS. It signs only with a {@link KmsPrivateKey} of the
 * matching key family and never verifies: verification uses the public key with the JDK's own
 * providers.
 *
 * <p>The message is buffered whole because the native side hashes it (JWS signing inputs are
 * small). RSA signatures are returned raw, ECDSA signatures DER-encoded, as the JDK's do.
 */
final class KmsSignatureSpi extends SignatureSpi {

    private final String jcaAlgorithm;
    private final String keyAlgorithm;
    /** The PSS parameters this algorithm implements, or null for PKCS#1 v1.5 and ECDSA. */
    private final PSSParameterSpec pssParameters;

    private final ByteArrayOutputStream message = new ByteArrayOutputStream();
    private KmsPrivateKey key;

    private KmsSignatureSpi(String jcaAlgorithm, String keyAlgorithm, PSSParameterSpec pssParameters) {
        this.jcaAlgorithm = jcaAlgorithm;
        this.keyAlgorithm = keyAlgorithm;
        this.pssParameters = pssParameters;
    }

    /** RSASSA-PKCS1-v1_5, e.g. {@code SHA256withRSA}. */
    static KmsSignatureSpi rsaPkcs1(String jcaAlgorithm) {
        return new KmsSignatureSpi(jcaAlgorithm, "RSA", null);
    }

    /**
     * RSASSA-PSS as JWS uses it: MGF1 with the message digest and a salt as long as the digest,
     * e.g. {@code SHA256withRSAandMGF1} with {@code "SHA-256"}.
     */
    static KmsSignatureSpi rsaPss(String jcaAlgorithm, String digest, int digestLength) {
        return new KmsSignatureSpi(jcaAlgorithm, "RSA",
                new PSSParameterSpec(digest, "MGF1", new MGF1ParameterSpec(digest), digestLength, 1));
    }

    /** ECDSA, e.g. {@code SHA256withECDSA}. */
    static KmsSignatureSpi ecdsa(String jcaAlgorithm) {
        return new KmsSignatureSpi(jcaAlgorithm, "EC", null);
    }

    @Override
    protected void engineInitSign(PrivateKey privateKey) throws InvalidKeyException {
        // Refusing foreign keys here is what makes the JDK's delayed provider selection move on
        // to the next provider; a software key must never reach KMS code. An unusable key is let
        // through whatever its type, so that signing fails with the reason it is unusable.
        if (!(privateKey instanceof KmsPrivateKey)
                || !(((KmsPrivateKey) privateKey).isUnusable() || keyAlgorithm.equals(privateKey.getAlgorithm()))) {
            throw new InvalidKeyException(jcaAlgorithm + " of provider " + KmsJcaProvider.NAME
                    + " signs only with a " + keyAlgorithm + " " + KmsPrivateKey.class.getSimpleName()
                    + ", not with " + describe(privateKey));
        }
        key = (KmsPrivateKey) privateKey;
        message.reset();
    }

    @Override
    protected void engineInitVerify(PublicKey publicKey) throws InvalidKeyException {
        throw new InvalidKeyException(KmsJcaProvider.NAME
                + " only signs; verify with the public key and the JDK's providers");
    }

    @Override
    protected void engineUpdate(byte b) throws SignatureException {
        requireKey();
        message.write(b);
    }

    @Override
    protected void engineUpdate(byte[] bytes, int offset, int length) throws SignatureException {
        requireKey();
        message.write(bytes, offset, length);
    }

    @Override
    protected byte[] engineSign() throws SignatureException {
        requireKey();
        byte[] data = message.toByteArray();
        // Signing resets the object for the next message with the same key, as JCA requires.
        message.reset();
        return key.sign(jcaAlgorithm, data);
    }

    @Override
    protected boolean engineVerify(byte[] signature) throws SignatureException {
        throw new SignatureException(KmsJcaProvider.NAME + " only signs");
    }

    @Override
    protected void engineSetParameter(AlgorithmParameterSpec params) throws InvalidAlgorithmParameterException {
        if (pssParameters == null) {
            if (params != null) {
                throw new InvalidAlgorithmParameterException(jcaAlgorithm + " takes no parameters");
            }
            return;
        }
        // KMS implements PSS only with MGF1 over the message digest and salt length = digest length.
        if (!(params instanceof PSSParameterSpec)) {
            throw new InvalidAlgorithmParameterException(jcaAlgorithm + " takes only a PSSParameterSpec");
        }
        PSSParameterSpec pss = (PSSParameterSpec) params;
        boolean sameDigest = sameDigest(pss.getDigestAlgorithm(), pssParameters.getDigestAlgorithm());
        boolean mgf1WithSameDigest = "MGF1".equalsIgnoreCase(pss.getMGFAlgorithm())
                && pss.getMGFParameters() instanceof MGF1ParameterSpec
                && sameDigest(((MGF1ParameterSpec) pss.getMGFParameters()).getDigestAlgorithm(),
                        pssParameters.getDigestAlgorithm());
        if (!sameDigest || !mgf1WithSameDigest || pss.getSaltLength() != pssParameters.getSaltLength()
                || pss.getTrailerField() != PSSParameterSpec.TRAILER_FIELD_BC) {
            throw new InvalidAlgorithmParameterException(jcaAlgorithm + " with KMS supports only digest "
                    + pssParameters.getDigestAlgorithm() + ", MGF1 with " + pssParameters.getDigestAlgorithm()
                    + ", salt length " + pssParameters.getSaltLength() + " and trailer field 1");
        }
    }

    @Override
    protected AlgorithmParameters engineGetParameters() {
        if (pssParameters == null) {
            return null;
        }
        try {
            AlgorithmParameters parameters = AlgorithmParameters.getInstance("RSASSA-PSS");
            parameters.init(pssParameters);
            return parameters;
        } catch (NoSuchAlgorithmException | InvalidParameterSpecException e) {
            throw new UnsupportedOperationException("No RSASSA-PSS AlgorithmParameters available", e);
        }
    }

    /** @deprecated replaced by {@link #engineSetParameter(AlgorithmParameterSpec)} in the JCA. */
    @Deprecated
    @Override
    protected void engineSetParameter(String param, Object value) {
        throw new InvalidParameterException(jcaAlgorithm + " has no parameter " + param);
    }

    /** @deprecated replaced by {@link #engineGetParameters()} in the JCA. */
    @Deprecated
    @Override
    protected Object engineGetParameter(String param) {
        throw new InvalidParameterException(jcaAlgorithm + " has no parameter " + param);
    }

    private void requireKey() throws SignatureException {
        if (key == null) {
            throw new SignatureException(jcaAlgorithm + " is not initialised for signing");
        }
    }

    /** "SHA-256" and "SHA256" name the same digest. */
    private static boolean sameDigest(String a, String b) {
        return a != null && normalise(a).equals(normalise(b));
    }

    private static String normalise(String digest) {
        return digest.replace("-", "").toUpperCase(Locale.ROOT);
    }

    private static String describe(PrivateKey privateKey) {
        if (privateKey == null) {
            return "null";
        }
        // Class and algorithm only: a key's toString may print key material.
        return privateKey.getClass().getName() + " (" + privateKey.getAlgorithm() + ")";
    }
}
