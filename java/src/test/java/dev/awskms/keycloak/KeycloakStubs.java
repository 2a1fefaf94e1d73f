package dev.awskms.keycloak;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.keycloak.common.crypto.CryptoIntegration;
import org.keycloak.common.crypto.CryptoProvider;
import org.keycloak.common.crypto.PemUtilsProvider;
import org.keycloak.component.ComponentModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RealmProvider;
import org.keycloak.vault.VaultStringSecret;
import org.keycloak.vault.VaultTranscriber;

/**
 * Stand-ins for the pieces of a running Keycloak that the factory touches: a session with a
 * vault, a realm with a name, and the crypto provider Keycloak installs at startup (which
 * {@code PemUtils} needs). Each is a {@link Proxy} that answers only the methods the provider
 * uses and fails loudly on anything else, so a new dependency shows up as a test failure.
 */
public final class KeycloakStubs {

    private static final BouncyCastleProvider BOUNCY_CASTLE = new BouncyCastleProvider();

    private KeycloakStubs() {
    }

    /** A vault holding {@code secrets} (name → value) that records every lookup. */
    public static final class FakeVault {
        /** Keycloak's {@code DefaultVaultTranscriber} syntax. */
        private static final Pattern REFERENCE = Pattern.compile("^\\$\\{vault\\.(.+?)}$");

        private final Map<String, String> secrets;
        private final List<String> lookups = Collections.synchronizedList(new ArrayList<>());

        public FakeVault(Map<String, String> secrets) {
            this.secrets = secrets;
        }

        /** The values {@code getStringSecret} was called with, in order. */
        public List<String> lookups() {
            return List.copyOf(lookups);
        }

        /** As {@code DefaultVaultTranscriber}: a reference is looked up, any other value is itself. */
        private VaultStringSecret stringSecret(String value) {
            lookups.add(value);
            Matcher reference = value == null ? null : REFERENCE.matcher(value);
            Optional<String> secret = reference != null && reference.matches()
                    ? Optional.ofNullable(secrets.get(reference.group(1)))
                    : Optional.ofNullable(value);
            return new VaultStringSecret() {
                @Override
                public Optional<String> get() {
                    return secret;
                }

                @Override
                public void close() {
                }
            };
        }
    }

    /** A session whose {@code vault()} is {@code vault}, and whose realm provider knows {@code realms}. */
    public static KeycloakSession session(FakeVault vault, RealmModel... realms) {
        VaultTranscriber transcriber = stub(VaultTranscriber.class, (proxy, method, args) -> {
            if (method.getName().equals("getStringSecret")) {
                return vault.stringSecret((String) args[0]);
            }
            return unsupported(VaultTranscriber.class, method.getName());
        });
        RealmProvider realmProvider = stub(RealmProvider.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "getRealmsStream":
                    return Stream.of(realms);
                case "getRealm":
                    return Stream.of(realms).filter(realm -> realm.getId().equals(args[0])).findFirst().orElse(null);
                default:
                    return unsupported(RealmProvider.class, method.getName());
            }
        });
        return stub(KeycloakSession.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "vault":
                    return transcriber;
                case "realms":
                    return realmProvider;
                default:
                    return unsupported(KeycloakSession.class, method.getName());
            }
        });
    }

    /** A realm that has a name (its id is {@code "id-" + name}) and no components. */
    public static RealmModel realm(String name) {
        return realm(name, List.of());
    }

    /**
     * A realm with a name (id {@code "id-" + name}) and {@code components}, which its
     * {@code getComponent} and {@code getComponentsStream} return.
     */
    public static RealmModel realm(String name, List<ComponentModel> components) {
        return stub(RealmModel.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "getName":
                    return name;
                case "getId":
                    return "id-" + name;
                case "getComponent":
                    return components.stream().filter(c -> c.getId().equals(args[0])).findFirst()
                            .map(ComponentModel::new).orElse(null);
                case "getComponentsStream":
                    return components.stream().map(ComponentModel::new);
                default:
                    return unsupported(RealmModel.class, method.getName());
            }
        });
    }

    /**
     * Installs the part of Keycloak's crypto provider that {@code PemUtils.decodeCertificate}
     * uses: Keycloak's own PEM parsing with a BouncyCastle X.509 factory, as Keycloak's default
     * provider has. Idempotent.
     */
    public static synchronized void installCrypto() {
        if (CryptoIntegration.isInitialised()) {
            return;
        }
        PemUtilsProvider pemUtils = new PemUtilsProvider() {
            @Override
            public java.security.PrivateKey decodePrivateKey(String pem) {
                throw new UnsupportedOperationException("decodePrivateKey is not used by the aws-kms provider");
            }

            @Override
            protected String encode(Object object) {
                throw new UnsupportedOperationException("encode is not used by the aws-kms provider");
            }
        };
        CryptoIntegration.setProvider(stub(CryptoProvider.class, (proxy, method, args) -> {
            switch (method.getName()) {
                case "getPemUtils":
                    return pemUtils;
                case "getX509CertFactory":
                    return CertificateFactory.getInstance("X.509", BOUNCY_CASTLE);
                case "getBouncyCastleProvider":
                    return BOUNCY_CASTLE;
                case "getKeyFactory":
                    // As Keycloak's default provider: the algorithm from BouncyCastle.
                    return java.security.KeyFactory.getInstance((String) args[0], BOUNCY_CASTLE);
                case "order":
                    return 0;
                default:
                    return unsupported(CryptoProvider.class, method.getName());
            }
        }));
    }

    /** A dynamic proxy of {@code type} with identity {@code equals}/{@code hashCode} and a readable {@code toString}. */
    public static <T> T stub(Class<T> type, InvocationHandler handler) {
        InvocationHandler withObjectMethods = (proxy, method, args) -> {
            switch (method.getName()) {
                case "toString":
                    return "stub " + type.getSimpleName();
                case "hashCode":
                    return System.identityHashCode(proxy);
                case "equals":
                    return proxy == args[0];
                default:
                    return handler.invoke(proxy, method, args);
            }
        };
        return type.cast(Proxy.newProxyInstance(KeycloakStubs.class.getClassLoader(), new Class<?>[] {type},
                withObjectMethods));
    }

    public static Object unsupported(Class<?> type, String method) {
        throw new UnsupportedOperationException(type.getSimpleName() + "." + method + " is not stubbed");
    }
}
