package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.UUID;
import java.util.stream.Collectors;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.NativeException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.broker.oidc.OIDCIdentityProviderConfig;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.jose.jwk.JWK;
import org.keycloak.keys.PublicKeyStorageProviderFactory;
import org.keycloak.keys.infinispan.InfinispanPublicKeyStorageProviderFactory;
import org.keycloak.keys.loader.ClientPublicKeyLoader;
import org.keycloak.keys.loader.OIDCIdentityProviderPublicKeyLoader;
import org.keycloak.models.ClientModel;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.RealmModel;
import org.keycloak.models.cache.CachePublicKeyProviderFactory;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.util.JsonSerialization;

/** How Keycloak finds and configures the storage, and which sources it downloads natively. */
@DisplayName("The native-lru storage factories")
class NativePublicKeyStorageFactoryTest {

    @Test
    @DisplayName("are found by Keycloak's service loader for both SPIs, with one id and an order above Infinispan's")
    void registeredForBothSpis() {
        // Keycloak's Infinispan factories are on the test classpath too (provided scope).
        PublicKeyStorageProviderFactory<?> storage = ServiceLoader.load(PublicKeyStorageProviderFactory.class).stream()
                .map(ServiceLoader.Provider::get)
                .filter(factory -> factory instanceof NativePublicKeyStorageProviderFactory)
                .findFirst().orElseThrow();
        CachePublicKeyProviderFactory cache = ServiceLoader.load(CachePublicKeyProviderFactory.class).stream()
                .map(ServiceLoader.Provider::get)
                .filter(factory -> factory instanceof NativeCachePublicKeyProviderFactory)
                .findFirst().orElseThrow();

        assertEquals("native-lru", storage.getId());
        assertEquals("native-lru", cache.getId());
        assertTrue(storage.order() > 0, "Keycloak picks the highest order above 0 as the default");
        assertTrue(storage.order() > new InfinispanPublicKeyStorageProviderFactory().order());
        assertEquals(storage.order(), cache.order());
    }

    @Test
    @DisplayName("documents every option with the native library's default")
    void documentsOptionsWithTheNativeDefaults() throws Exception {
        Map<String, Object> documented = new NativePublicKeyStorageProviderFactory().getConfigMetadata().stream()
                .collect(Collectors.toMap(ProviderConfigProperty::getName, ProviderConfigProperty::getDefaultValue));
        Map<String, Object> nativeDefaults = JsonSerialization.mapper.readValue(Native.publicKeyCacheDefaults(),
                new TypeReference<Map<String, Object>>() {
                });
        assertEquals(nativeDefaults, documented);
        for (ProviderConfigProperty option : new NativePublicKeyStorageProviderFactory().getConfigMetadata()) {
            assertTrue(option.getHelpText().length() > 20, option.getName());
        }
    }

    @Test
    @DisplayName("sends the native cache only the options the operator set, in their own names and units")
    void sendsOnlyTheOptionsThatAreSet() throws Exception {
        PublicKeyCachePolicy policy = PublicKeyCachePolicy.from(PublicKeyStubs.options(Map.of(
                "minTimeBetweenRequests", "2", "maxEntries", "50", "staleOnErrorLimit", "60", "fetchTimeout", "750")));

        JsonNode json = JsonSerialization.mapper.readTree(policy.toNativeJson(List.of("MIIB")));

        assertEquals(Map.of("minTimeBetweenRequests", 2, "maxEntries", 50, "staleOnErrorLimit", 60, "fetchTimeout", 750,
                "trustedCertificates", List.of("MIIB")), JsonSerialization.mapper.convertValue(json,
                        new TypeReference<Map<String, Object>>() {
                        }));
        assertEquals("{}", PublicKeyCachePolicy.from(PublicKeyStubs.options(Map.of())).toNativeJson());
    }

    @Test
    @DisplayName("sends the address and key options as the operator wrote them, in their own types")
    void sendsAddressAndKeyOptions() throws Exception {
        PublicKeyCachePolicy policy = PublicKeyCachePolicy.from(PublicKeyStubs.options(Map.of(
                "denyPrivateNetworks", "true", "deniedAddresses", "127.0.0.77/32,2001:db8::/32", "minRsaKeySize", "3072")));

        assertEquals(Map.of("denyPrivateNetworks", true, "deniedAddresses", "127.0.0.77/32,2001:db8::/32",
                "minRsaKeySize", 3072), JsonSerialization.mapper.readValue(policy.toNativeJson(),
                        new TypeReference<Map<String, Object>>() {
                        }));
        assertDoesNotThrow(() -> Native.configurePublicKeyCache(policy.toNativeJson()));
        Native.configurePublicKeyCache("{}");
    }

    @Test
    @DisplayName("refuses at startup a denied network or RSA size the native library refuses, naming the option")
    void refusesBadAddressAndKeyOptions() {
        NativePublicKeyStorageProviderFactory factory = new NativePublicKeyStorageProviderFactory();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> factory.init(PublicKeyStubs.options(Map.of("deniedAddresses", "10.0.0.1/8"))));
        assertTrue(e.getMessage().startsWith("Option --spi-public-key-storage--native-lru--denied-addresses is invalid"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> factory.init(PublicKeyStubs.options(Map.of("minRsaKeySize", "256"))));
        assertTrue(e.getMessage().contains("--spi-public-key-storage--native-lru--min-rsa-key-size"), e.getMessage());
    }

    @Test
    @DisplayName("names the address options in download refusals as the command line spells them")
    void downloadRefusalsNameTheOptionsAsOnTheCommandLine() {
        try {
            Native.configurePublicKeyCache("{\"deniedAddresses\":\"127.0.0.1/32\"}");
            NativeException denied = assertThrows(NativeException.class,
                    () -> Native.fetchJwks("http://127.0.0.1:9/jwks", "sig"));
            assertEquals(dev.awskms.keycloak.internal.NativeErrorCode.JWKS_FETCH_FAILED, denied.code());
            assertTrue(denied.detail().endsWith("(option "
                    + PublicKeyCachePolicy.commandLineName(PublicKeyCachePolicy.DENIED_ADDRESSES_KEY) + ")"),
                    denied.detail());
            Native.configurePublicKeyCache("{\"denyPrivateNetworks\":true}");
            NativeException loopback = assertThrows(NativeException.class,
                    () -> Native.fetchJwks("http://127.0.0.1:9/jwks", "sig"));
            assertTrue(loopback.detail().endsWith("(option "
                    + PublicKeyCachePolicy.commandLineName(PublicKeyCachePolicy.DENY_PRIVATE_NETWORKS_KEY) + ")"),
                    loopback.detail());
        } finally {
            Native.configurePublicKeyCache("{}");
        }
    }

    @Test
    @DisplayName("refuses at startup an option the native library refuses, naming it as on the command line")
    void refusesOutOfRangeOptions() {
        NativePublicKeyStorageProviderFactory factory = new NativePublicKeyStorageProviderFactory();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> factory.init(PublicKeyStubs.options(Map.of("maxEntries", "0"))));
        assertTrue(e.getMessage().contains("--spi-public-key-storage--native-lru--max-entries"), e.getMessage());
        assertInstanceOf(NativeException.class, e.getCause());
        e = assertThrows(IllegalArgumentException.class,
                () -> factory.init(PublicKeyStubs.options(Map.of("maxAge", "60", "fetchTimeout", "0"))));
        assertTrue(e.getMessage().contains("--spi-public-key-storage--native-lru--fetch-timeout"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> factory.init(PublicKeyStubs.options(Map.of("minTimeBetweenRequests", "-1"))));
        assertTrue(e.getMessage().contains("--spi-public-key-storage--native-lru--min-time-between-requests"),
                e.getMessage());
    }

    @Test
    @DisplayName("accepts 0 to turn the window and stale-on-error off, as Keycloak's storage accepts a 0 window")
    void acceptsZeroWindowAndStaleLimit() {
        assertDoesNotThrow(() -> new NativePublicKeyStorageProviderFactory().init(PublicKeyStubs.options(Map.of(
                "minTimeBetweenRequests", "0", "staleOnErrorLimit", "0"))));
    }

    @Test
    @DisplayName("names an option the way the command line spells it")
    void spellsOptionsAsOnTheCommandLine() {
        assertEquals("--spi-public-key-storage--native-lru--fetch-connect-timeout",
                PublicKeyCachePolicy.commandLineName(PublicKeyCachePolicy.FETCH_CONNECT_TIMEOUT_KEY));
    }

    @Test
    @DisplayName("trusts the JVM's default CAs for downloads when Keycloak has no truststore")
    void trustsJvmDefaultsWithoutTruststore() {
        PublicKeyStubs.World world = new PublicKeyStubs.World(new NativePublicKeyStorageProviderFactory());
        List<String> trusted = TrustedCertificates.forJwksDownloads(world.session(null).session);
        assertTrue(trusted.size() > 10, "the JVM's cacerts: " + trusted.size());
    }

    @Test
    @DisplayName("downloads natively only the JWKS URLs Keycloak's client and OIDC loaders would download")
    @SuppressWarnings("deprecation") // JWK.Use: Keycloak's loader constructor takes no other type.
    void choosesNativeDownloadsLikeKeycloaksLoaders() {
        PublicKeyStubs.World world = new PublicKeyStubs.World(new NativePublicKeyStorageProviderFactory());
        RealmModel realm = PublicKeyStubs.realm("realm-" + UUID.randomUUID());
        world.add(realm);
        ClientModel jwksUrlClient = PublicKeyStubs.client(realm, UUID.randomUUID().toString(), "a",
                Map.of("use.jwks.url", "true", "jwks.url", "https://client.example/jwks"));
        ClientModel certificateClient = PublicKeyStubs.client(realm, UUID.randomUUID().toString(), "b",
                Map.of("use.jwks.url", "false", "jwks.url", "https://client.example/jwks"));
        world.add(jwksUrlClient);
        world.add(certificateClient);
        IdentityProviderModel idp = new IdentityProviderModel();
        idp.setInternalId(UUID.randomUUID().toString());
        idp.getConfig().put("useJwksUrl", "true");
        idp.getConfig().put("jwksUrl", "https://idp.example/certs");
        world.add(idp);
        var session = world.session(realm).session;
        String sig = realm.getId() + "::client::" + jwksUrlClient.getId() + "::keyuse::SIG";
        String enc = realm.getId() + "::client::" + jwksUrlClient.getId() + "::keyuse::ENCRYPTION";
        String idpKey = realm.getId() + "::idp::" + idp.getInternalId();

        JwksDownloadSource client = JwksDownloadSource.resolve(session, sig,
                new ClientPublicKeyLoader(session, jwksUrlClient, JWK.Use.SIG));
        assertNotNull(client);
        assertEquals("https://client.example/jwks", client.url);
        assertEquals(KeyUse.SIG, client.use);
        assertEquals(KeyUse.ENC, JwksDownloadSource.resolve(session, enc,
                new ClientPublicKeyLoader(session, jwksUrlClient, JWK.Use.ENCRYPTION)).use);
        JwksDownloadSource provider = JwksDownloadSource.resolve(session, idpKey,
                new OIDCIdentityProviderPublicKeyLoader(session, new OIDCIdentityProviderConfig(idp)));
        assertEquals("https://idp.example/certs", provider.url);

        assertNull(JwksDownloadSource.resolve(session, realm.getId() + "::client::" + certificateClient.getId()
                + "::keyuse::SIG", new ClientPublicKeyLoader(session, certificateClient, JWK.Use.SIG)),
                "a client without 'Use JWKS URL' keeps Keycloak's loader");
        assertNull(JwksDownloadSource.resolve(session, sig, () -> PublicKeysWrapper.EMPTY),
                "any other loader runs itself");
        assertNull(JwksDownloadSource.resolve(session, sig,
                new ClientPublicKeyLoader(session, jwksUrlClient, JWK.Use.SIG) { }),
                "a subclass of Keycloak's loader may load differently");
        assertNull(JwksDownloadSource.resolve(session, idpKey, new ClientPublicKeyLoader(session, jwksUrlClient)),
                "a client loader for an identity provider's model key is not a client source");
        assertNull(JwksDownloadSource.resolve(world.session(PublicKeyStubs.realm("other")).session, idpKey,
                new OIDCIdentityProviderPublicKeyLoader(session, new OIDCIdentityProviderConfig(idp))),
                "identity providers resolve only within the session's realm");
    }
}
