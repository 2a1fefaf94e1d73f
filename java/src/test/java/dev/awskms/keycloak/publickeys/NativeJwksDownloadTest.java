package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.ServerSocket;
import java.security.KeyPair;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.broker.oidc.OIDCIdentityProviderConfig;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.jose.jwk.JSONWebKeySet;
import org.keycloak.jose.jwk.JWK;
import org.keycloak.keys.loader.ClientPublicKeyLoader;
import org.keycloak.keys.loader.OIDCIdentityProviderPublicKeyLoader;
import org.keycloak.models.ClientModel;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.RealmModel;
import org.keycloak.util.JWKSUtils;
import org.keycloak.util.JsonSerialization;

/**
 * Clients and identity providers that use a JWKS URL: the native library downloads their keys,
 * and the storage builds the keys Keycloak's {@code JWKSUtils} would.
 */
@DisplayName("JWKS URL sources of the native-lru storage")
class NativeJwksDownloadTest {

    private static final Map<String, String> OPTIONS = Map.of(PublicKeyCachePolicy.MIN_TIME_BETWEEN_REQUESTS_KEY, "3600");

    private static final KeyPair RSA = TestKeys.rsa();
    private static final KeyPair RSA_ENC = TestKeys.rsa();
    private static final KeyPair EC = TestKeys.ecP256();
    private static final KeyPair ED25519 = TestKeys.ed25519();

    private static PublicKeyStubs.World world;
    private static TestKeys.JwksServer jwks;

    @BeforeAll
    static void start() throws Exception {
        world = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(OPTIONS));
        jwks = new TestKeys.JwksServer();
        jwks.serve(List.of(
                TestKeys.jwk("rsa-sig", "sig", Algorithm.RS256, RSA.getPublic()),
                TestKeys.jwk("rsa-enc", "enc", Algorithm.RSA_OAEP, RSA_ENC.getPublic()),
                TestKeys.jwk("ec-sig", null, null, EC.getPublic()),
                TestKeys.jwk("ed-sig", "sig", Algorithm.EdDSA, ED25519.getPublic())));
    }

    @AfterAll
    static void stop() {
        if (jwks != null) {
            jwks.close();
        }
    }

    private static RealmModel newRealm() {
        RealmModel realm = PublicKeyStubs.realm("realm-" + UUID.randomUUID());
        world.add(realm);
        return realm;
    }

    private static ClientModel jwksUrlClient(RealmModel realm, String url) {
        ClientModel client = PublicKeyStubs.client(realm, UUID.randomUUID().toString(), "jwt-client",
                Map.of("use.jwks.url", "true", "jwks.url", url));
        world.add(client);
        return client;
    }

    @SuppressWarnings("deprecation") // JWK.Use: Keycloak's loader and JWKSUtils take no other type.
    private static ClientPublicKeyLoader clientLoader(PublicKeyStubs.FakeSession session, ClientModel client, JWK.Use use) {
        return new ClientPublicKeyLoader(session.session, client, use);
    }

    private static String clientSource(ClientModel client, String use) {
        return client.getRealm().getId() + "::client::" + client.getId() + "::keyuse::" + use;
    }

    @SuppressWarnings("deprecation")
    private static PublicKeysWrapper keycloaksOwnParse(String document, JWK.Use use) throws Exception {
        JSONWebKeySet set = JsonSerialization.readValue(document, JSONWebKeySet.class);
        return JWKSUtils.getKeyWrappersForUse(set, use, true);
    }

    @Test
    @DisplayName("downloads a client's JWKS once and builds the keys Keycloak's JWKSUtils builds")
    @SuppressWarnings("deprecation")
    void clientJwksUrlMatchesKeycloak() throws Exception {
        RealmModel realm = newRealm();
        ClientModel client = jwksUrlClient(realm, jwks.url());
        PublicKeyStubs.FakeSession session = world.session(realm);
        int requestsBefore = jwks.requests();

        List<KeyWrapper> keys = session.storage().getKeys(clientSource(client, "SIG"), clientLoader(session, client, JWK.Use.SIG));
        for (int i = 0; i < 20; i++) {
            assertNotNull(session.storage().getPublicKey(clientSource(client, "SIG"), "rsa-sig", Algorithm.RS256,
                    clientLoader(session, client, JWK.Use.SIG)));
        }

        assertEquals(1, jwks.requests() - requestsBefore, "one download for every lookup");
        assertEquals(List.of("rsa-sig", "ec-sig", "ed-sig"), keys.stream().map(KeyWrapper::getKid).toList(),
                "signature keys and keys without 'use', in document order");

        // Keycloak's parser as the reference (its EC parsing needs Keycloak's crypto provider, so EC
        // is checked against the generated key below).
        PublicKeysWrapper expected = keycloaksOwnParse(jwks.document(), JWK.Use.SIG);
        for (KeyWrapper key : keys) {
            KeyWrapper reference = expected.getKeyByKidAndAlg(key.getKid(), key.getAlgorithm());
            if (reference == null) {
                assertEquals(KeyType.EC, key.getType(), "only EC is left out of the reference");
                continue;
            }
            assertEquals(reference.getAlgorithm(), key.getAlgorithm(), key.getKid());
            assertEquals(reference.getType(), key.getType(), key.getKid());
            assertEquals(reference.getUse(), key.getUse(), key.getKid());
            assertEquals(reference.getCurve(), key.getCurve(), key.getKid());
            assertEquals(reference.isDefaultClientCertificate(), key.isDefaultClientCertificate(), key.getKid());
            assertEquals(reference.getPublicKey(), key.getPublicKey(), key.getKid());
        }
        KeyWrapper ec = keys.get(1);
        assertEquals(KeyType.EC, ec.getType());
        assertEquals("P-256", ec.getCurve());
        assertNull(ec.getAlgorithm());
        assertEquals(Algorithm.ES256, ec.getAlgorithmOrDefault());
        assertEquals(KeyUse.SIG, ec.getUse());
        assertArrayEquals(EC.getPublic().getEncoded(), ec.getPublicKey().getEncoded());
    }

    @Test
    @DisplayName("downloads a client's encryption keys for the ENCRYPTION source")
    @SuppressWarnings("deprecation")
    void clientEncryptionKeys() {
        RealmModel realm = newRealm();
        ClientModel client = jwksUrlClient(realm, jwks.url());
        PublicKeyStubs.FakeSession session = world.session(realm);

        KeyWrapper key = session.storage().getFirstPublicKey(clientSource(client, "ENCRYPTION"), Algorithm.RSA_OAEP,
                clientLoader(session, client, JWK.Use.ENCRYPTION));

        assertEquals("rsa-enc", key.getKid());
        assertEquals(KeyUse.ENC, key.getUse());
        assertEquals(RSA_ENC.getPublic(), key.getPublicKey());
    }

    @Test
    @DisplayName("downloads an OpenID Connect identity provider's JWKS URL natively")
    void identityProviderJwksUrl() {
        RealmModel realm = newRealm();
        IdentityProviderModel model = new IdentityProviderModel();
        model.setInternalId(UUID.randomUUID().toString());
        model.setAlias("upstream");
        model.setProviderId("oidc");
        model.getConfig().put("useJwksUrl", "true");
        model.getConfig().put("jwksUrl", jwks.url());
        world.add(model);
        PublicKeyStubs.FakeSession session = world.session(realm);
        int requestsBefore = jwks.requests();

        KeyWrapper key = session.storage().getPublicKey(realm.getId() + "::idp::" + model.getInternalId(), "ed-sig",
                Algorithm.EdDSA, new OIDCIdentityProviderPublicKeyLoader(session.session, new OIDCIdentityProviderConfig(model)));

        assertEquals(ED25519.getPublic(), key.getPublicKey());
        assertEquals("Ed25519", key.getCurve());
        assertEquals(1, jwks.requests() - requestsBefore);
    }

    @Test
    @DisplayName("an unreachable JWKS URL fails as Keycloak's storage does: 'Error when loading public keys'")
    @SuppressWarnings("deprecation")
    void unreachableJwksUrlFails() throws Exception {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0)) {
            closedPort = socket.getLocalPort();
        }
        RealmModel realm = newRealm();
        ClientModel client = jwksUrlClient(realm, "http://127.0.0.1:" + closedPort + "/jwks");
        PublicKeyStubs.FakeSession session = world.session(realm);

        RuntimeException e = assertThrows(RuntimeException.class, () -> session.storage().getPublicKey(
                clientSource(client, "SIG"), "rsa-sig", Algorithm.RS256, clientLoader(session, client, JWK.Use.SIG)));

        assertTrue(e.getMessage().startsWith("Error when loading public keys: "), e.getMessage());
    }

    @Test
    @DisplayName("a JWKS URL answering an error status fails with that status, and the next lookup is throttled")
    @SuppressWarnings("deprecation")
    void errorStatusFails() throws Exception {
        try (TestKeys.JwksServer failing = new TestKeys.JwksServer()) {
            failing.status(503);
            RealmModel realm = newRealm();
            ClientModel client = jwksUrlClient(realm, failing.url());
            PublicKeyStubs.FakeSession session = world.session(realm);

            RuntimeException e = assertThrows(RuntimeException.class, () -> session.storage().getPublicKey(
                    clientSource(client, "SIG"), "rsa-sig", Algorithm.RS256, clientLoader(session, client, JWK.Use.SIG)));
            assertTrue(e.getMessage().contains("503"), e.getMessage());

            assertNull(session.storage().getPublicKey(clientSource(client, "SIG"), "rsa-sig", Algorithm.RS256,
                    clientLoader(session, client, JWK.Use.SIG)));
            assertEquals(1, failing.requests());
        }
    }
}
