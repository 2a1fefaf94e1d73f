package dev.awskms.keycloak.signing;

import java.time.Instant;
import java.util.List;
import java.util.Map;

import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.common.util.MultivaluedHashMap;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.KeyProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderEvent;

/**
 * Key provider {@value #ID}: realm signing keys whose private half stays in AWS KMS.
 *
 * <p>Saving the component ({@link KmsKeyValidation}) asks KMS for the key and stores what the
 * native library describes with the component; serving requests ({@link #create}) only reads that
 * stored material. The private key is a {@link KmsPrivateKey} handle that {@link KmsJcaProvider}
 * signs with; the native library keeps one signing key per component, which the lifecycle hooks
 * release when the component (or its realm) changes or goes.
 *
 * <p>The server options ({@code --spi-keys--aws-kms--…}, {@link SigningPolicyOptions}) are the
 * operator's policy for what realm administrators may configure; the native library enforces it
 * on every save and again when a stored provider's key is first used.
 *
 * <p>Keycloak instantiates factories while it builds the server, so nothing here loads native
 * code before {@link #init} (the JCA provider, and the library if server options are set) or the
 * first save or signature (the library).
 */
public final class KmsKeyProviderFactory implements KeyProviderFactory<KmsKeyProvider> {

    public static final String ID = "aws-kms";

    private static final Logger LOG = Logger.getLogger(KmsKeyProviderFactory.class);

    /** Component note holding the built key, so requests do not decode the public key again. */
    static final String KEY_NOTE = KmsKeyProviderFactory.class.getName() + ".key";

    /** The key built from one exact configuration; a note is reused only for that configuration. */
    private static final class CachedKey {
        final Map<String, List<String>> config;
        final KeyWrapper key;

        CachedKey(Map<String, List<String>> config, KeyWrapper key) {
            this.config = config;
            this.key = key;
        }
    }

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public String getHelpText() {
        return "Signs tokens with an asymmetric key in AWS KMS; the private key never leaves KMS. Saving reads the "
                + "key's ARN and public key from KMS, signs once to check that the credentials may sign, and stores "
                + "them with the provider, together with the uploaded certificate or one minted by the KMS key. "
                + "Every signature is a KMS "
                + "call: while KMS cannot be reached, requests that need this key fail instead of falling back to a "
                + "local key.";
    }

    @Override
    public List<ProviderConfigProperty> getConfigProperties() {
        return KmsKeyAttributes.CONFIG_PROPERTIES;
    }

    /**
     * Registers the JCA provider. If the operator set server options, the native library takes
     * them now, so that an option it refuses stops the server with the option's name; without
     * any, its defaults apply and nothing is loaded here.
     *
     * @throws IllegalArgumentException naming a refused option
     */
    @Override
    public void init(Config.Scope config) {
        KmsJcaProvider.register();
        SigningPolicyOptions options = SigningPolicyOptions.from(config);
        LOG.debugf("Key provider %s server options: %s", ID, options);
        if (!options.isEmpty()) {
            try {
                Native.configureSigningPolicy(options.toNativeJson());
            } catch (NativeException e) {
                throw options.refused(e);
            }
        }
    }

    @Override
    public List<ProviderConfigProperty> getConfigMetadata() {
        return SigningPolicyOptions.CONFIG_METADATA;
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
        factory.register(this::onProviderEvent);
    }

    @Override
    public void close() {
    }

    /**
     * This factory never creates a fallback key: a realm that relies on KMS must not quietly start
     * signing with a key KMS never saw. (Keycloak's own generated-key factories still create one when
     * no active key exists for an algorithm at all; {@link DefaultAlgorithmCoverage} warns on save
     * when that would hit the realm's default algorithm.)
     */
    @Override
    public boolean createFallbackKeys(KeycloakSession session, KeyUse keyUse, String algorithm) {
        return false;
    }

    @Override
    public void validateConfiguration(KeycloakSession session, RealmModel realm, ComponentModel model)
            throws ComponentValidationException {
        KmsKeyValidation.validate(session, realm, model);
        DefaultAlgorithmCoverage.checkAfterSave(realm, model);
    }

    /**
     * Builds the provider from stored material. Never throws and never calls KMS or native code:
     * if {@code create} threw, Keycloak would skip the provider and could generate a software
     * fallback key for the algorithm. A component whose stored material is missing or corrupt
     * therefore still yields its key, with the configured status, but without a public key (so it
     * is not published) and with a private key whose every signature fails with the reason. The
     * realm then fails loudly on signing until an administrator saves the provider again.
     *
     * <p>Vault references in the secret fields are resolved here, once per built key, through
     * {@code session}; the resolved values go into the key's {@link KmsPrivateKey} only. If one
     * does not resolve, the key is complete but cannot sign, and it is not kept, so that a later
     * request tries the vault again.
     */
    @Override
    public KmsKeyProvider create(KeycloakSession session, ComponentModel model) {
        KeyWrapper key;
        try {
            key = cachedOrBuiltKey(session, model);
        } catch (RuntimeException e) {
            LOG.errorf(e, "aws-kms key provider %s: could not build its key; signing with it will fail", model.getId());
            key = StoredSigningKey.unusable(model, "the key could not be built (" + e.getClass().getSimpleName()
                    + "); see the server log");
        }
        return new KmsKeyProvider(key);
    }

    private static KeyWrapper cachedOrBuiltKey(KeycloakSession session, ComponentModel model) {
        CachedKey cached = model.getNote(KEY_NOTE);
        if (cached != null && cached.config.equals(model.getConfig())) {
            return cached.key;
        }
        ResolvedSecrets secrets = ResolvedSecrets.resolve(session, model);
        secrets.problem().ifPresent(problem -> LOG.warnf("aws-kms key provider %s (%s): %s. Signing with it fails "
                + "until the vault has that secret.", model.getId(), model.getName(), problem));
        KeyWrapper key;
        try {
            key = StoredSigningKey.fromComponent(model, secrets, realmName(session, model));
        } catch (StoredSigningKey.InvalidStoredKeyException e) {
            LOG.warnf("aws-kms key provider %s (%s) has no usable stored key: %s. Signing with it fails until "
                    + "the provider is saved again.", model.getId(), model.getName(), e.getMessage());
            key = StoredSigningKey.unusable(model, e.getMessage()
                    + "; save the provider again so that its key is read from KMS");
        }
        warnIfCertificateExpires(model, key);
        if (secrets.problem().isEmpty()) {
            MultivaluedHashMap<String, String> snapshot = new MultivaluedHashMap<>();
            snapshot.addAll(model.getConfig());
            model.setNote(KEY_NOTE, new CachedKey(snapshot, key));
        }
        return key;
    }

    /**
     * The name of the component's realm, which the server policy may name; null if it cannot be
     * told (no session, as in tests), which the policy treats as no realm it names.
     */
    private static String realmName(KeycloakSession session, ComponentModel model) {
        if (session == null || model.getParentId() == null) {
            return null;
        }
        try {
            RealmModel realm = session.realms().getRealm(model.getParentId());
            return realm == null ? null : realm.getName();
        } catch (RuntimeException e) {
            LOG.debugf(e, "aws-kms key provider %s: could not read the name of realm %s", model.getId(),
                    model.getParentId());
            return null;
        }
    }

    /** Logs, once per certificate, that the published certificate is about to expire; never throws. */
    private static void warnIfCertificateExpires(ComponentModel model, KeyWrapper key) {
        try {
            CertificateExpiry.warnOnce(model, key.getCertificate(), Instant.now());
        } catch (RuntimeException e) {
            LOG.debugf(e, "aws-kms key provider %s: could not check the certificate's expiry", model.getId());
        }
    }

    /** The next signature registers the new configuration; the old key is released once the update ends. */
    @Override
    public void onUpdate(KeycloakSession session, RealmModel realm, ComponentModel oldModel, ComponentModel newModel) {
        SigningKeyReleases.afterTransaction(session, List.of(newModel.getId()));
    }

    @Override
    public void preRemove(KeycloakSession session, RealmModel realm, ComponentModel model) {
        SigningKeyReleases.afterTransaction(session, List.of(model.getId()));
        CertificateExpiry.forget(model.getId());
        DefaultAlgorithmCoverage.checkAfterRemoval(realm, model);
    }

    /** Removing a realm removes its components without {@link #preRemove}. */
    void onProviderEvent(ProviderEvent event) {
        if (event instanceof RealmModel.RealmRemovedEvent) {
            SigningKeyReleases.ofRemovedRealm((RealmModel.RealmRemovedEvent) event);
        }
    }
}
