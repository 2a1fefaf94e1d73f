package dev.awskms.keycloak.signing;

import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.security.PrivateKey;
import java.security.SignatureException;

import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeErrorCode;
import dev.awskms.keycloak.internal.NativeException;
import dev.awskms.keycloak.internal.NativeLibraryLoadException;
import dev.awskms.keycloak.operator.SigningTimer;
import org.jboss.logging.Logger;

/**
 * An opaque handle to a private key that stays in AWS KMS.
 *
 * <p>It implements {@link PrivateKey} only (not {@code RSAPrivateKey}/{@code ECPrivateKey}) and
 * has no encoding, so no software provider can use it; {@link KmsJcaProvider} is the only provider
 * that accepts it. Keycloak puts it into the key provider's {@code KeyWrapper}, and its ordinary
 * {@code Signature.getInstance(alg).initSign(key)} lands in {@link KmsSignatureSpi}.
 *
 * <p>The native library keeps one signing key per component; this key obtains its handle on the
 * first signature and again whenever the library answers that the handle is no longer valid (the
 * component's key was released, or replaced by another configuration), so a key built earlier
 * keeps working as long as its component is configured this way.
 *
 * <p>It holds the provider configuration needed to obtain the native handle, which can include
 * the secret access key and the external ID, resolved from Keycloak's vault when they are
 * {@code ${vault.NAME}} references. This is the only place resolved values are kept: the fields
 * are transient, serialisation is refused, and {@link #toString()} shows only the key type, kid
 * and component id.
 *
 * <p>Obtaining the handle holds the stored provider to the server policy again. A provider the
 * policy no longer allows (the options were tightened after it was saved) gets no handle: its key
 * stays in place, so that Keycloak creates no software key instead, and every signature fails with
 * the policy's message, which is logged once per key at WARN.
 */
public final class KmsPrivateKey implements PrivateKey {

    private static final long serialVersionUID = 1L;

    private static final Logger LOG = Logger.getLogger(KmsPrivateKey.class);

    private final transient String algorithm;
    private final transient String componentId;
    /** The name of the component's realm, for the log; null if unknown. */
    private final transient String realmName;
    private final transient String kid;
    /** Null for an unusable key. May contain the (resolved) secret access key and external ID. */
    private final transient String nativeConfigJson;
    /** Why this key cannot sign; null for a usable key. */
    private final transient String unusableReason;

    private final transient Object handleLock = new Object();
    /** Null until resolved; any long (even 0) is a valid opaque handle. */
    private transient volatile Long handle;
    /** The server policy's refusal of this key's provider, once the native library gave it. */
    private transient volatile String policyRefusal;

    private KmsPrivateKey(String algorithm, String componentId, String realmName, String kid,
            String nativeConfigJson, String unusableReason) {
        this.algorithm = algorithm;
        this.componentId = componentId;
        this.realmName = realmName;
        this.kid = kid;
        this.nativeConfigJson = nativeConfigJson;
        this.unusableReason = unusableReason;
    }

    /**
     * A key that signs through the native library.
     *
     * @param algorithm        the stored key type, {@code "RSA"} or {@code "EC"}
     * @param nativeConfigJson {@link SigningConfigJson#forSigning} of the component, secrets resolved
     */
    static KmsPrivateKey usable(String algorithm, String componentId, String kid, String nativeConfigJson) {
        return usable(algorithm, componentId, null, kid, nativeConfigJson);
    }

    /**
     * {@link #usable(String, String, String, String)} of a component of realm {@code realmName},
     * which the server policy's refusal is logged with.
     */
    static KmsPrivateKey usable(String algorithm, String componentId, String realmName, String kid,
            String nativeConfigJson) {
        return new KmsPrivateKey(algorithm, componentId, realmName, kid, nativeConfigJson, null);
    }

    /**
     * A key that refuses to sign, for a component whose stored material is missing or corrupt, or
     * whose vault reference does not resolve.
     * It keeps Keycloak from generating a software fallback key while making every signing
     * attempt fail with {@code reason}.
     */
    static KmsPrivateKey unusable(String algorithm, String componentId, String kid, String reason) {
        return new KmsPrivateKey(algorithm, componentId, null, kid, null, reason);
    }

    /** Whether every signature fails, with the reason the key was built unusable. */
    boolean isUnusable() {
        return unusableReason != null;
    }

    /** The stored key type ({@code "RSA"} or {@code "EC"}); a placeholder for an unusable key without one. */
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
        String refusal = policyRefusal;
        if (refusal != null) {
            throw policyRefused(refusal);
        }
        try {
            return SigningTimer.time(() -> signWithHandle(jcaAlgorithm, message));
        } catch (NativeException e) {
            if (e.code() == NativeErrorCode.POLICY_DENIED) {
                rememberPolicyRefusal(e.detail());
                throw policyRefused(e.detail());
            }
            throw new SignatureException(String.format(
                    "AWS KMS signing with %s failed for key provider %s (kid %s): %s%s",
                    jcaAlgorithm, componentId, kid, e.getMessage(), e.retryable() ? " (temporary)" : ""), e);
        } catch (NativeLibraryLoadException e) {
            throw new SignatureException(String.format(
                    "AWS KMS signing is unavailable for key provider %s (kid %s): %s", componentId, kid,
                    e.getMessage()), e);
        }
    }

    private SignatureException policyRefused(String refusal) {
        return new SignatureException(String.format("AWS KMS key provider %s (kid %s) may not sign under this "
                + "server's policy: %s", componentId, kid, refusal));
    }

    /** Keeps the refusal, so that later signatures fail without asking again, and logs it the first time. */
    private void rememberPolicyRefusal(String refusal) {
        synchronized (handleLock) {
            if (policyRefusal != null) {
                return;
            }
            policyRefusal = refusal;
        }
        LOG.warnf("aws-kms key provider %s of realm %s (kid %s) does not fit this server's policy and will not "
                + "sign: %s. No other key signs in its place; change the provider (or the server options) and "
                + "save it again.", componentId, realmName == null ? "(unknown)" : realmName, kid, refusal);
    }

    /** Signs with the cached handle; a handle the registry no longer knows is obtained once more. */
    private byte[] signWithHandle(String jcaAlgorithm, byte[] message) {
        long used = nativeHandle();
        try {
            return Native.sign(used, jcaAlgorithm, message);
        } catch (NativeException e) {
            if (e.code() != NativeErrorCode.INVALID_HANDLE) {
                throw e;
            }
            return Native.sign(renewHandle(used), jcaAlgorithm, message);
        }
    }

    /** The cached handle, obtained on first use. */
    private long nativeHandle() {
        Long resolved = handle;
        if (resolved == null) {
            synchronized (handleLock) {
                resolved = handle;
                if (resolved == null) {
                    resolved = Native.signingKeyHandle(componentId, nativeConfigJson);
                    handle = resolved;
                }
            }
        }
        return resolved;
    }

    /** A new handle in place of {@code stale}, unless another thread has renewed it already. */
    private long renewHandle(long stale) {
        synchronized (handleLock) {
            Long current = handle;
            if (current == null || current == stale) {
                current = Native.signingKeyHandle(componentId, nativeConfigJson);
                handle = current;
            }
            return current;
        }
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
