package dev.awskms.keycloak.signing;

import java.security.Provider;
import java.security.Security;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import org.jboss.logging.Logger;

/**
 * The JCA provider that signs with {@link KmsPrivateKey} handles.
 *
 * <p>Keycloak signs with {@code Signature.getInstance(alg)} without naming a provider and then
 * {@code initSign(key)}. The JDK's delayed provider selection then skips every service whose
 * {@code SupportedKeyClasses} does not match the key (SunRsaSign, SunEC) or whose
 * {@code initSign} rejects it (BouncyCastle). Each of our services declares
 * {@code SupportedKeyClasses = KmsPrivateKey}, so our handle reaches only us, and software keys
 * never reach us even though this provider is installed last (see README, "How it works").
 *
 * <p>The service names and their key types must be registered before any native code may load, so
 * they are listed here; a test pins them to the native signing catalogue.
 */
public final class KmsJcaProvider extends Provider {

    private static final long serialVersionUID = 1L;

    /** The provider name used when it is free. */
    public static final String NAME = "AwsKms";

    private static final Logger LOG = Logger.getLogger(KmsJcaProvider.class);
    private static final Object LOCK = new Object();
    /** Guarded by {@link #LOCK}. */
    private static KmsJcaProvider installed;

    private KmsJcaProvider(String name) {
        super(name, "1.0", "Signs with AWS KMS keys of the Keycloak aws-kms key provider (accepts only "
                + KmsPrivateKey.class.getName() + ")");
        putSignature("SHA256withRSA", () -> KmsSignatureSpi.rsaPkcs1("SHA256withRSA"));
        putSignature("SHA384withRSA", () -> KmsSignatureSpi.rsaPkcs1("SHA384withRSA"));
        putSignature("SHA512withRSA", () -> KmsSignatureSpi.rsaPkcs1("SHA512withRSA"));
        putSignature("SHA256withRSAandMGF1", () -> KmsSignatureSpi.rsaPss("SHA256withRSAandMGF1", "SHA-256", 32));
        putSignature("SHA384withRSAandMGF1", () -> KmsSignatureSpi.rsaPss("SHA384withRSAandMGF1", "SHA-384", 48));
        putSignature("SHA512withRSAandMGF1", () -> KmsSignatureSpi.rsaPss("SHA512withRSAandMGF1", "SHA-512", 64));
        putSignature("SHA256withECDSA", () -> KmsSignatureSpi.ecdsa("SHA256withECDSA"));
        putSignature("SHA384withECDSA", () -> KmsSignatureSpi.ecdsa("SHA384withECDSA"));
        putSignature("SHA512withECDSA", () -> KmsSignatureSpi.ecdsa("SHA512withECDSA"));
    }

    private void putSignature(String algorithm, Supplier<KmsSignatureSpi> engine) {
        putService(new SignatureService(this, algorithm, engine));
    }

    /**
     * Appends the provider to the JVM's provider list unless this class loader already did.
     * Appending (lowest preference) is enough: selection is by key class, not by position.
     *
     * @return the installed provider
     */
    public static Provider register() {
        synchronized (LOCK) {
            if (installed == null) {
                // Another class loader (e.g. a previous Keycloak in the same JVM) may hold the name;
                // its services only accept its own KmsPrivateKey class, so install ours beside it.
                String name = NAME;
                if (Security.getProvider(name) != null) {
                    name = NAME + "-" + Integer.toHexString(System.identityHashCode(KmsJcaProvider.class.getClassLoader()));
                    LOG.warnf("A JCA provider named %s is already installed by another class loader; installing %s", NAME, name);
                }
                KmsJcaProvider provider = new KmsJcaProvider(name);
                Security.addProvider(provider);
                installed = provider;
            }
            return installed;
        }
    }

    /** A Signature service that creates its engine directly instead of by reflection. */
    private static final class SignatureService extends Service {
        private final Supplier<KmsSignatureSpi> engine;

        SignatureService(Provider provider, String algorithm, Supplier<KmsSignatureSpi> engine) {
            super(provider, "Signature", algorithm, KmsSignatureSpi.class.getName(), List.of(),
                    Map.of("SupportedKeyClasses", KmsPrivateKey.class.getName()));
            this.engine = engine;
        }

        @Override
        public Object newInstance(Object constructorParameter) {
            return engine.get();
        }
    }
}
