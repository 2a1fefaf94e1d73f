package dev.awskms.keycloak.publickeys;

import java.io.IOException;
import java.io.OutputStream;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import com.sun.net.httpserver.HttpServer;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyWrapper;

/** Key pairs, their JWKs and a loopback JWKS server for the tests. */
final class TestKeys {

    private TestKeys() {
    }

    static KeyPair rsa() {
        return generate("RSA", null);
    }

    static KeyPair ecP256() {
        return generate("EC", new ECGenParameterSpec("secp256r1"));
    }

    static KeyPair ed25519() {
        return generate("Ed25519", null);
    }

    private static KeyPair generate(String algorithm, ECGenParameterSpec spec) {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance(algorithm);
            if (spec != null) {
                generator.initialize(spec);
            } else if (algorithm.equals("RSA")) {
                generator.initialize(2048);
            }
            return generator.generateKeyPair();
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A key as a loader would build it. */
    static KeyWrapper wrapper(String kid, String algorithm, PublicKey publicKey) {
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        key.setAlgorithm(algorithm);
        key.setType(publicKey.getAlgorithm().equals("EC") ? KeyType.EC : KeyType.RSA);
        key.setPublicKey(publicKey);
        return key;
    }

    /** The public JWK of a key, as a map ready for JSON; {@code use} and {@code alg} are left out when null. */
    static Map<String, Object> jwk(String kid, String use, String algorithm, PublicKey publicKey) {
        Map<String, Object> jwk = new LinkedHashMap<>();
        jwk.put("kid", kid);
        if (use != null) {
            jwk.put("use", use);
        }
        if (algorithm != null) {
            jwk.put("alg", algorithm);
        }
        if (publicKey instanceof RSAPublicKey) {
            RSAPublicKey rsa = (RSAPublicKey) publicKey;
            jwk.put("kty", "RSA");
            jwk.put("n", base64Url(unsigned(rsa.getModulus(), 0)));
            jwk.put("e", base64Url(unsigned(rsa.getPublicExponent(), 0)));
        } else if (publicKey instanceof ECPublicKey) {
            ECPublicKey ec = (ECPublicKey) publicKey;
            jwk.put("kty", "EC");
            jwk.put("crv", "P-256");
            jwk.put("x", base64Url(unsigned(ec.getW().getAffineX(), 32)));
            jwk.put("y", base64Url(unsigned(ec.getW().getAffineY(), 32)));
        } else {
            byte[] spki = publicKey.getEncoded();
            jwk.put("kty", "OKP");
            jwk.put("crv", "Ed25519");
            jwk.put("x", base64Url(Arrays.copyOfRange(spki, spki.length - 32, spki.length)));
        }
        return jwk;
    }

    private static byte[] unsigned(BigInteger value, int length) {
        byte[] bytes = value.toByteArray();
        if (bytes.length > 1 && bytes[0] == 0) {
            bytes = Arrays.copyOfRange(bytes, 1, bytes.length);
        }
        if (length > bytes.length) {
            byte[] padded = new byte[length];
            System.arraycopy(bytes, 0, padded, length - bytes.length, bytes.length);
            return padded;
        }
        return bytes;
    }

    private static String base64Url(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    /** A JWKS endpoint on 127.0.0.1 that counts its requests; the document and status can change. */
    static final class JwksServer implements AutoCloseable {
        private final HttpServer server;
        private final AtomicInteger requests = new AtomicInteger();
        private volatile String document = "{\"keys\":[]}";
        private volatile int status = 200;

        JwksServer() throws IOException {
            server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
            server.createContext("/jwks", exchange -> {
                requests.incrementAndGet();
                byte[] body = document.getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().set("Content-Type", "application/json");
                exchange.sendResponseHeaders(status, body.length);
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(body);
                }
            });
            server.start();
        }

        String url() {
            return "http://127.0.0.1:" + server.getAddress().getPort() + "/jwks";
        }

        void serve(List<Map<String, Object>> keys) throws IOException {
            document = org.keycloak.util.JsonSerialization.writeValueAsString(Map.of("keys", keys));
        }

        String document() {
            return document;
        }

        void status(int status) {
            this.status = status;
        }

        int requests() {
            return requests.get();
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }
}
