package dev.awskms.keycloak.publickeys;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.KeyPair;
import java.security.KeyStore;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.jose.jwk.JWK;
import org.keycloak.keys.loader.ClientPublicKeyLoader;
import org.keycloak.models.ClientModel;
import org.keycloak.models.RealmModel;
import org.keycloak.truststore.TruststoreProvider;
import org.keycloak.util.JsonSerialization;

/**
 * HTTPS JWKS downloads trust what Keycloak's truststore trusts: a server whose certificate is in
 * it is accepted; with the JVM's default CAs only, the same server is refused.
 */
@DisplayName("Trust of native JWKS downloads")
class JwksTrustTest {

    private static final String PASSWORD = "changeit";
    private static final KeyPair RSA = TestKeys.rsa();

    @TempDir
    static Path directory;

    private static HttpsServer server;
    private static KeyStore serverKeys;

    @BeforeAll
    static void startHttpsServer() throws Exception {
        Path keystore = directory.resolve("server.p12");
        // keytool ships with every JDK and writes a certificate with the SAN TLS clients require.
        Process keytool = new ProcessBuilder(Paths.get(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair", "-alias", "jwks", "-keyalg", "EC", "-groupname", "secp256r1",
                "-dname", "CN=127.0.0.1", "-ext", "SAN=ip:127.0.0.1", "-validity", "2",
                "-keystore", keystore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD)
                .redirectErrorStream(true).start();
        String output = new String(keytool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(keytool.waitFor(60, TimeUnit.SECONDS) && keytool.exitValue() == 0, output);

        serverKeys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(keystore)) {
            serverKeys.load(in, PASSWORD.toCharArray());
        }
        KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keyManagers.init(serverKeys, PASSWORD.toCharArray());
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(keyManagers.getKeyManagers(), null, null);

        byte[] document = JsonSerialization.writeValueAsBytes(
                Map.of("keys", List.of(TestKeys.jwk("tls-kid", "sig", Algorithm.RS256, RSA.getPublic()))));
        server = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setHttpsConfigurator(new HttpsConfigurator(tls));
        server.createContext("/jwks", exchange -> {
            exchange.sendResponseHeaders(200, document.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(document);
            }
        });
        server.start();
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.stop(0);
        }
    }

    /** A Keycloak truststore holding exactly the server's certificate. */
    private static TruststoreProvider truststoreWithServerCertificate() throws Exception {
        KeyStore truststore = KeyStore.getInstance("PKCS12");
        truststore.load(null, null);
        truststore.setCertificateEntry("jwks-server", serverKeys.getCertificate("jwks"));
        return PublicKeyStubs.stub(TruststoreProvider.class, (proxy, method, args) -> {
            if (method.getName().equals("getTruststore")) {
                return truststore;
            }
            throw new UnsupportedOperationException("TruststoreProvider." + method.getName() + " is not stubbed");
        });
    }

    @SuppressWarnings("deprecation") // JWK.Use: Keycloak's loader constructor takes no other type.
    private static KeyWrapper lookUp(PublicKeyStubs.World world) {
        RealmModel realm = PublicKeyStubs.realm("realm-" + UUID.randomUUID());
        ClientModel client = PublicKeyStubs.client(realm, UUID.randomUUID().toString(), "tls-client", Map.of(
                "use.jwks.url", "true",
                "jwks.url", "https://127.0.0.1:" + server.getAddress().getPort() + "/jwks"));
        world.add(realm);
        world.add(client);
        PublicKeyStubs.FakeSession session = world.session(realm);
        return session.storage().getPublicKey(realm.getId() + "::client::" + client.getId() + "::keyuse::SIG",
                "tls-kid", Algorithm.RS256, new ClientPublicKeyLoader(session.session, client, JWK.Use.SIG));
    }

    @Test
    @DisplayName("downloads from a server whose certificate is in Keycloak's truststore, and refuses it otherwise")
    void trustsKeycloaksTruststore() throws Exception {
        PublicKeyStubs.World jvmDefaults = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(Map.of()));
        RuntimeException refused = assertThrows(RuntimeException.class, () -> lookUp(jvmDefaults));
        assertTrue(refused.getMessage().startsWith("Error when loading public keys: "), refused.getMessage());

        PublicKeyStubs.World withTruststore = new PublicKeyStubs.World(PublicKeyStubs.storageFactory(Map.of()));
        withTruststore.truststore = truststoreWithServerCertificate();
        assertEquals(RSA.getPublic(), lookUp(withTruststore).getPublicKey());
    }
}
