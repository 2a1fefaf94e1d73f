import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.publickeys.NativePublicKeyStorageProviderFactory;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyType;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.keys.PublicKeyStorageProvider;
import org.keycloak.models.KeycloakSession;

/**
 * Issue 10 §5: the memory the {@code native-lru} cache takes for N sources (scripts/bench/footprint.sh
 * runs it with {@code java -cp <bench classpath> CacheFootprint.java MODE N}; BENCHMARKS.md).
 *
 * <p>Each source is what a client's JWKS becomes: three {@code KeyWrapper}s (two RSA-2048, one EC
 * P-256), each with its own decoded {@code PublicKey}, built by the loader as Keycloak's loaders do.
 * MODE {@code native} stores them in {@code native-lru} through {@code PublicKeyStorageProvider};
 * MODE {@code java} keeps the same wrappers in a {@code HashMap} (the control: everything but the
 * native cache). The heap is fixed and pre-touched ({@code -Xms = -Xmx}, {@code -XX:+AlwaysPreTouch}),
 * so growth of the resident set is native memory: the native cache's entries, JNI global references,
 * and whatever the JVM itself adds (code, metaspace), which the control measures. Prints a JSON line per reading.
 */
public final class CacheFootprint {

    private static final Pattern VM_RSS = Pattern.compile("^VmRSS:\\s+(\\d+) kB", Pattern.MULTILINE);
    /** Distinct key material to build the sources' keys from (key generation is slow; decoding is not). */
    private static final int KEY_POOL = 32;
    /**
     * Sources loaded before the first reading, as many as are measured: the JIT's own native memory
     * (compiler arenas, code) grows while code warms up and would otherwise be counted; after this
     * many the same code has run 10,000 times.
     */
    private static final int WARM_SOURCES = 10000;
    /** Readings per JVM, each of N more sources. */
    private static final int BATCHES = 3;

    public static void main(String[] args) throws Exception {
        java.util.logging.Logger.getLogger("").setLevel(java.util.logging.Level.OFF);
        String mode = args[0];
        int sources = Integer.parseInt(args[1]);
        List<byte[]> rsa = encodedKeys("RSA", 2048);
        List<byte[]> ec = encodedKeys("EC", 256);

        PublicKeyStorageProvider storage = null;
        Map<String, PublicKeysWrapper> control = new HashMap<>();
        if (mode.equals("native")) {
            storage = storageFactory(Map.of("maxEntries", String.valueOf(2 * (BATCHES * sources + WARM_SOURCES)),
                    "minTimeBetweenRequests", "3600")).create(session());
        } else if (!mode.equals("java")) {
            throw new IllegalArgumentException("mode: native or java");
        }

        fill(storage, control, 0, WARM_SOURCES, rsa, ec);
        Thread.sleep(1000);  // background compilations of the warm-up end
        // BATCHES readings of `sources` more each: one JSON line per batch.
        for (int batch = 0; batch < BATCHES; batch++) {
            int from = WARM_SOURCES + batch * sources;
            long heapBefore = usedHeapAfterGc();
            long rssBefore = rssKib();
            fill(storage, control, from, from + sources, rsa, ec);
            long heapAfter = usedHeapAfterGc();
            long rssAfter = rssKib();
            // Every source of the batch is still there: a hit for its first and its last one.
            if (storage != null) {
                for (int i : new int[] {from, from + sources - 1}) {
                    if (storage.getPublicKey(source(i), "rsa-current", Algorithm.RS256, () -> {
                        throw new IllegalStateException("source " + i + " was evicted");
                    }) == null) {
                        throw new IllegalStateException("source " + i + " has no rsa-current");
                    }
                }
            }
            System.out.printf("{\"mode\":\"%s\",\"batch\":%d,\"sources\":%d,\"keysPerSource\":3,"
                    + "\"rssDeltaKiB\":%d,\"heapDeltaKiB\":%d,\"rssKiB\":%d}%n", mode, batch, sources,
                    rssAfter - rssBefore, (heapAfter - heapBefore) / 1024, rssAfter);
        }
        if (control.isEmpty() && storage == null) {
            throw new IllegalStateException("nothing stored");
        }
    }

    private static void fill(PublicKeyStorageProvider storage, Map<String, PublicKeysWrapper> control, int from,
            int to, List<byte[]> rsa, List<byte[]> ec) throws Exception {
        KeyFactory rsaFactory = KeyFactory.getInstance("RSA");
        KeyFactory ecFactory = KeyFactory.getInstance("EC");
        for (int i = from; i < to; i++) {
            List<KeyWrapper> keys = List.of(
                    key("rsa-previous", KeyType.RSA, Algorithm.RS256, rsaFactory, rsa.get(i % KEY_POOL)),
                    key("rsa-current", KeyType.RSA, Algorithm.RS256, rsaFactory, rsa.get((i + 1) % KEY_POOL)),
                    key("ec-current", KeyType.EC, Algorithm.ES256, ecFactory, ec.get(i % KEY_POOL)));
            PublicKeysWrapper wrapper = new PublicKeysWrapper(keys);
            if (storage != null) {
                if (storage.getPublicKey(source(i), "rsa-current", Algorithm.RS256, () -> wrapper) == null) {
                    throw new IllegalStateException("source " + i + " did not load");
                }
            } else {
                control.put(source(i), wrapper);
            }
        }
    }

    /** A client's signature keys, in Keycloak's model key format. */
    private static String source(int i) {
        return String.format("bench-realm::client::%08x-6a1c-4e0e-9c1d-bench%07d::keyuse::SIG", i, i);
    }

    private static KeyWrapper key(String kid, String type, String algorithm, KeyFactory factory, byte[] encoded)
            throws Exception {
        PublicKey publicKey = factory.generatePublic(new X509EncodedKeySpec(encoded));
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        key.setType(type);
        key.setAlgorithm(algorithm);
        key.setUse(KeyUse.SIG);
        key.setPublicKey(publicKey);
        return key;
    }

    private static List<byte[]> encodedKeys(String algorithm, int size) throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance(algorithm);
        generator.initialize(size);
        List<byte[]> keys = new ArrayList<>();
        for (int i = 0; i < KEY_POOL; i++) {
            KeyPair pair = generator.generateKeyPair();
            keys.add(pair.getPublic().getEncoded());
        }
        return keys;
    }

    private static long usedHeapAfterGc() throws InterruptedException {
        Runtime runtime = Runtime.getRuntime();
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return runtime.totalMemory() - runtime.freeMemory();
    }

    private static long rssKib() throws Exception {
        Matcher m = VM_RSS.matcher(Files.readString(Path.of("/proc/self/status")));
        if (!m.find()) {
            throw new IllegalStateException("no VmRSS in /proc/self/status");
        }
        return Long.parseLong(m.group(1));
    }

    /** What the storage touches in a session outside eviction: no truststore, no cluster. */
    private static KeycloakSession session() {
        return KeycloakStubs.stub(KeycloakSession.class, (proxy, method, args) -> method.getName().equals("getProvider")
                ? null
                : KeycloakStubs.unsupported(KeycloakSession.class, method.getName()));
    }

    /** The test suite's factory stub ({@code PublicKeyStubs.storageFactory}, package-private: by reflection). */
    private static NativePublicKeyStorageProviderFactory storageFactory(Map<String, String> options) throws Exception {
        Method method = Class.forName("dev.awskms.keycloak.publickeys.PublicKeyStubs")
                .getDeclaredMethod("storageFactory", Map.class);
        method.setAccessible(true);
        return (NativePublicKeyStorageProviderFactory) method.invoke(null, options);
    }
}
