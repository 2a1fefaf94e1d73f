package dev.awskms.keycloak;

import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.security.PrivateKey;
import java.security.SignatureException;

/**
 * An opaque handle to a private key that stays in AWS KMS.
 *
 * <p>It implements {@link PrivateKey} only (not {@code RSAPrivateKey}/{@code ECPrivateKey}) and
 * has no encoding, so no software provider can use it; {@link KmsJcaProvider} is the only provider
 * that accepts it. Keycloak puts it into the key provider's {@code KeyWrapper}, and its ordinary
 * {@code Signature.getInstance(alg).initSign(key)} lands in {@link KmsSignatureSpi}.
 *
 * <p>It holds the provider configuration needed to obtain the native handle, which can include
 * the secret access key and the external ID, resolved from Keycloak's vault when they are
 * {@code ${vault.NAME}} references. This is the only place resolved values are kept: the fields
 * are transient, serialisation is refused, and {@link #toString()} shows only the key type, kid
 * and component id.
 */
public final class KmsPrivateKey implements PrivateKey {

    private static final long serialVersionUID = 1L;

    private final transient String algorithm;
    private final transient String componentId;
    private final transient String kid;
    /** Null for an unusable key. May contain the (resolved) secret access key and external ID. */
    private final transient String nativeConfigJson;
    /** Why this key cannot sign; null for a usable key. */
    private final transient String unusableReason;

    private final transient Object handleLock = new Object();
    /** Null until resolved; any long (even 0) is a valid opaque handle. */
    private transient volatile Long handle;

    private KmsPrivateKey(String algorithm, String componentId, String kid, String nativeConfigJson,
            String unusableReason) {
        this.algorithm = algorithm;
        this.componentId = componentId;
        this.kid = kid;
        this.nativeConfigJson = nativeConfigJson;
        this.unusableReason = unusableReason;
    }

    /**
     * A key that signs through the native library.
     *
     * @param algorithm        {@code "RSA"} or {@code "EC"}
     * @param nativeConfigJson {@link NativeConfigJson#forSigning} of the component, secrets resolved
     */
    static KmsPrivateKey usable(String algorithm, String componentId, String kid, String nativeConfigJson) {
        return new KmsPrivateKey(algorithm, componentId, kid, nativeConfigJson, null);
    }

    /**
     * A key that refuses to sign, for a component whose stored material is missing or corrupt, or
     * whose vault reference does not resolve.
     * It keeps Keycloak from generating a software fallback key while making every signing
     * attempt fail with {@code reason}.
     */
    static KmsPrivateKey unusable(String algorithm, String componentId, String kid, String reason) {
        return new KmsPrivateKey(algorithm, componentId, kid, null, reason);
    }

    /** {@code "RSA"} or {@code "EC"}: the family of the KMS key. */
    @Override
    public String getAlgorithm() {
        return algorithm;
    }

    /** No encoding: the private key never leaves KMS. */
    @Override
    public String getFormat() {
        return null;
    }

    /** No encoding: the private key never leaves KMS. */
    @Override
    public byte[] getEncoded() {
        return null;
    }

    /**
     * Signs {@code message} with KMS.
     *
     * @param jcaAlgorithm the JCA signature algorithm, e.g. {@code SHA256withRSA}
     * @return the raw RSA signature, or the DER-encoded ECDSA signature
     * @throws SignatureException for every failure, with the native error code in the message
     */
    byte[] sign(String jcaAlgorithm, byte[] message) throws SignatureException {
        if (unusableReason != null) {
            throw new SignatureException(String.format(
                    "AWS KMS key provider %s (kid %s) cannot sign: %s", componentId, kid, unusableReason));
        }
        try {
            return NativeBridge.sign(nativeHandle(), jcaAlgorithm, message);
        } catch (NativeException e) {
            throw new SignatureException(String.format(
                    "AWS KMS signing with %s failed for key provider %s (kid %s): %s%s",
                    jcaAlgorithm, componentId, kid, e.getMessage(), e.retryable() ? " (temporary)" : ""), e);
        } catch (NativeLibraryLoadException e) {
            throw new SignatureException(String.format(
                    "AWS KMS signing is unavailable for key provider %s (kid %s): %s", componentId, kid,
                    e.getMessage()), e);
        }
    }

    /** Resolves the native handle once; the native call is idempotent, so a race is harmless but avoided. */
    private long nativeHandle() {
        Long resolved = handle;
        if (resolved == null) {
            synchronized (handleLock) {
                resolved = handle;
                if (resolved == null) {
                    NativeLibraryLoader.ensureLoaded();
                    resolved = NativeBridge.signingKeyHandle(nativeConfigJson);
                    handle = resolved;
                }
            }
        }
        return resolved;
    }

    @Override
    public String toString() {
        return "KmsPrivateKey[" + algorithm + ", kid=" + kid + ", component=" + componentId
                + (unusableReason != null ? ", unusable" : "") + "]";
    }

    private void writeObject(ObjectOutputStream out) throws NotSerializableException {
        throw new NotSerializableException(KmsPrivateKey.class.getName() + " is a handle to a KMS key and holds credentials");
    }

    private void readObject(ObjectInputStream in) throws NotSerializableException {
        throw new NotSerializableException(KmsPrivateKey.class.getName() + " is a handle to a KMS key and holds credentials");
    }
}
