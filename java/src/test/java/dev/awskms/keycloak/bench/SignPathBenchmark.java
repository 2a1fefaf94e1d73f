package dev.awskms.keycloak.bench;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.Signature;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import com.sun.management.OperatingSystemMXBean;
import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.signing.KmsJcaProvider;
import dev.awskms.keycloak.signing.KmsKeyAttributes;
import dev.awskms.keycloak.signing.KmsKeyProviderFactory;
import org.keycloak.component.ComponentModel;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.KeyProvider;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.runner.IterationType;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.http.apache5.Apache5HttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kms.KmsClient;
import software.amazon.awssdk.services.kms.model.MessageType;
import software.amazon.awssdk.services.kms.model.SigningAlgorithmSpec;

/**
 * One JWS signature, three ways, against the same KMS emulator (started by
 * {@code scripts/bench/sign-path.sh}, which passes its address as system properties):
 *
 * <ul>
 * <li>{@link #ours()}: what Keycloak does per token: {@code Signature.getInstance} + {@code initSign}
 * + {@code update} + {@code sign} with the aws-kms key's {@code PrivateKey}, through
 * {@link KmsJcaProvider}, JNI and the Rust KMS client.</li>
 * <li>{@link #awsSdkJava()}: what a pure-Java extension would do: SHA-256 with the JDK, then
 * {@code KmsClient.sign} ({@code MessageType.DIGEST}) with the AWS SDK for Java v2 and its Apache 5
 * HTTP client, connection pool sized above the thread count, no retries.</li>
 * <li>{@link #rawHttp()}: the floor: the same {@code Sign} request signed with SigV4 once per
 * iteration and written as bytes to a kept-alive socket per thread, the response read by
 * Content-Length. What remains is the emulator's service time plus loopback TCP.</li>
 * </ul>
 *
 * Mode sample time: JMH reports the mean and percentiles of each call; throughput is threads ÷
 * mean (a closed loop). Thread counts come from the command line ({@code -t}). Each measured
 * iteration also records the CPU time this JVM and the emulator process spent, divided by the
 * calls made, into the file named by {@code awskms.bench.cpuOut} (one JSON line per iteration).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
public class SignPathBenchmark {

    /** A JWS signing input of Keycloak's access-token size (header.payload, ~700 bytes). */
    static final byte[] MESSAGE = ("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImJlbmNoIn0." + "x".repeat(640))
            .getBytes(StandardCharsets.US_ASCII);

    @Param({"ES256", "RS256"})
    public String algorithm;

    private String kmsUrl;
    private String region;
    private String accessKeyId;
    private String secretAccessKey;
    private String keyAlias;
    private String jcaAlgorithm;
    private String kmsAlgorithm;
    private PrivateKey ourKey;
    private KmsClient sdk;
    private final LongAdder calls = new LongAdder();

    // Per-iteration CPU accounting.
    private long emulatorPid;
    private long iterationCalls;
    private long iterationJvmCpu;
    private long iterationEmulatorCpu;
    private long iterationStart;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams benchmark) throws Exception {
        kmsUrl = required("awskms.bench.kms");
        region = required("awskms.bench.region");
        accessKeyId = required("awskms.bench.accessKeyId");
        secretAccessKey = required("awskms.bench.secretAccessKey");
        emulatorPid = Long.parseLong(required("awskms.bench.emulatorPid"));
        boolean ec = "ES256".equals(algorithm);
        keyAlias = ec ? "alias/bench-ec256" : "alias/bench-rsa";
        jcaAlgorithm = ec ? "SHA256withECDSA" : "SHA256withRSA";
        kmsAlgorithm = ec ? "ECDSA_SHA_256" : "RSASSA_PKCS1_V1_5_SHA_256";

        KmsJcaProvider.register();
        KeycloakStubs.installCrypto();
        ComponentModel model = new ComponentModel();
        model.setId("bench-" + algorithm);
        model.setName("bench-" + algorithm);
        model.setProviderId(KmsKeyProviderFactory.ID);
        model.setProviderType("org.keycloak.keys.KeyProvider");
        model.put("priority", "200");
        model.put("enabled", "true");
        model.put("active", "true");
        model.put(KmsKeyAttributes.KMS_KEY_ID_KEY, keyAlias);
        model.put(KmsKeyAttributes.REGION_KEY, region);
        model.put(KmsKeyAttributes.ENDPOINT_URL_KEY, kmsUrl);
        model.put(KmsKeyAttributes.CREDENTIALS_MODE_KEY, KmsKeyAttributes.ACCESS_KEY_CREDENTIALS_MODE);
        model.put(KmsKeyAttributes.ACCESS_KEY_ID_KEY, accessKeyId);
        model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, secretAccessKey);
        model.put(KmsKeyAttributes.ALGORITHM_KEY, algorithm);
        KmsKeyProviderFactory factory = new KmsKeyProviderFactory();
        factory.validateConfiguration(null, null, model);
        KeyProvider provider = factory.create(null, model);
        KeyWrapper key = provider.getKeysStream().findFirst().orElseThrow();
        ourKey = (PrivateKey) key.getPrivateKey();

        sdk = KmsClient.builder()
                .endpointOverride(URI.create(kmsUrl))
                .region(Region.of(region))
                .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(accessKeyId, secretAccessKey)))
                .httpClientBuilder(Apache5HttpClient.builder().maxConnections(256))
                .overrideConfiguration(config -> config.retryStrategy(AwsRetryStrategy.doNotRetry()))
                .build();
        preWarm(benchmark);
    }

    /**
     * Warms the AWS SDK for Java up on one thread before JMH's own warm-up, for
     * {@code awskms.bench.prewarmSeconds} (default 20). Measured on 2026-12-03: its CPU per call at
     * 16 threads was still falling after 36 s of calls (2,127 → 93 µs), because 16 busy threads on 2
     * cores leave the JIT compiler threads little CPU; on one thread it is steady after ~18 s. Our
     * side and the raw request are steady within their first 3 s iteration, so they get none (it
     * would cost the run 4 minutes and change nothing).
     */
    private void preWarm(BenchmarkParams benchmark) throws Exception {
        if (!benchmark.getBenchmark().endsWith(".awsSdkJava")) {
            return;
        }
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.getLong("awskms.bench.prewarmSeconds", 20));
        while (System.nanoTime() < end) {
            awsSdkJava();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (sdk != null) {
            sdk.close();
        }
    }

    @Setup(Level.Iteration)
    public void startIteration() {
        iterationCalls = calls.sum();
        iterationJvmCpu = jvmCpuNanos();
        iterationEmulatorCpu = processCpuNanos(emulatorPid);
        iterationStart = System.nanoTime();
    }

    @TearDown(Level.Iteration)
    public void endIteration(BenchmarkParams benchmark, IterationParams iteration) throws IOException {
        long wall = System.nanoTime() - iterationStart;
        long made = calls.sum() - iterationCalls;
        long jvm = jvmCpuNanos() - iterationJvmCpu;
        long emulator = processCpuNanos(emulatorPid) - iterationEmulatorCpu;
        String out = System.getProperty("awskms.bench.cpuOut", "");
        if (iteration.getType() != IterationType.MEASUREMENT || out.isEmpty() || made == 0) {
            return;
        }
        String name = benchmark.getBenchmark().substring(benchmark.getBenchmark().lastIndexOf('.') + 1);
        String line = String.format(java.util.Locale.ROOT,
                "{\"benchmark\":\"%s\",\"algorithm\":\"%s\",\"threads\":%d,\"calls\":%d,\"wallNs\":%d,"
                        + "\"jvmCpuNs\":%d,\"emulatorCpuNs\":%d,\"loadavg\":\"%s\"}%n",
                name, algorithm, benchmark.getThreads(), made, wall, jvm, emulator, loadAverage());
        Files.writeString(Path.of(out), line, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    /** A kept-alive socket and a freshly signed request per thread (SigV4 allows 5 minutes of skew). */
    @State(Scope.Thread)
    public static class RawConnection {
        Socket socket;
        OutputStream out;
        InputStream in;
        byte[] request;

        @Setup(Level.Iteration)
        public void open(SignPathBenchmark bench) throws Exception {
            URI uri = URI.create(bench.kmsUrl);
            if (socket == null) {
                socket = new Socket();
                socket.setTcpNoDelay(true);
                socket.connect(new InetSocketAddress(uri.getHost(), uri.getPort()), 5000);
                out = socket.getOutputStream();
                in = new BufferedInputStream(socket.getInputStream(), 8192);
            }
            request = bench.signedSignRequest(uri);
        }

        @TearDown(Level.Trial)
        public void close() throws IOException {
            if (socket != null) {
                socket.close();
            }
        }
    }

    @Benchmark
    public byte[] ours() throws Exception {
        Signature signer = Signature.getInstance(jcaAlgorithm);
        signer.initSign(ourKey);
        signer.update(MESSAGE);
        byte[] signature = signer.sign();
        calls.increment();
        return signature;
    }

    @Benchmark
    public byte[] awsSdkJava() throws Exception {
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(MESSAGE);
        byte[] signature = sdk.sign(request -> request
                .keyId(keyAlias)
                .message(SdkBytes.fromByteArrayUnsafe(digest))
                .messageType(MessageType.DIGEST)
                .signingAlgorithm(SigningAlgorithmSpec.fromValue(kmsAlgorithm)))
                .signature().asByteArray();
        calls.increment();
        return signature;
    }

    @Benchmark
    public int rawHttp(RawConnection connection) throws IOException {
        connection.out.write(connection.request);
        connection.out.flush();
        int length = readResponse(connection.in);
        calls.increment();
        return length;
    }

    /** Reads one HTTP/1.1 response with a Content-Length body; fails on anything but 200. */
    private static int readResponse(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder(256);
        int state = 0;
        while (state < 4) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("connection closed mid-response");
            }
            head.append((char) b);
            state = (b == '\r' && (state == 0 || state == 2)) || (b == '\n' && (state == 1 || state == 3)) ? state + 1 : 0;
        }
        String text = head.toString();
        if (!text.startsWith("HTTP/1.1 200")) {
            throw new IOException("emulator answered " + text.lines().findFirst().orElse(""));
        }
        int length = -1;
        for (String line : text.split("\r\n")) {
            int colon = line.indexOf(':');
            if (colon > 0 && line.substring(0, colon).equalsIgnoreCase("content-length")) {
                length = Integer.parseInt(line.substring(colon + 1).trim());
            }
        }
        if (length < 0) {
            throw new IOException("no Content-Length in " + text);
        }
        byte[] body = in.readNBytes(length);
        if (body.length != length) {
            throw new IOException("short body");
        }
        return length;
    }

    /** The bytes of a SigV4-signed {@code TrentService.Sign} request over this algorithm's digest. */
    byte[] signedSignRequest(URI uri) throws Exception {
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(MESSAGE);
        String body = "{\"KeyId\":\"" + keyAlias + "\",\"Message\":\"" + Base64.getEncoder().encodeToString(digest)
                + "\",\"MessageType\":\"DIGEST\",\"SigningAlgorithm\":\"" + kmsAlgorithm + "\"}";
        String host = uri.getHost() + ":" + uri.getPort();
        ZonedDateTime now = ZonedDateTime.now(ZoneOffset.UTC);
        String amzDate = now.format(DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'"));
        String date = amzDate.substring(0, 8);
        String contentType = "application/x-amz-json-1.1";
        String target = "TrentService.Sign";
        String signedHeaders = "content-type;host;x-amz-date;x-amz-target";
        String canonical = "POST\n/\n\n" + "content-type:" + contentType + "\nhost:" + host + "\nx-amz-date:" + amzDate
                + "\nx-amz-target:" + target + "\n\n" + signedHeaders + "\n" + hex(sha256(body));
        String scope = date + "/" + region + "/kms/aws4_request";
        String toSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex(sha256(canonical));
        byte[] key = hmac(("AWS4" + secretAccessKey).getBytes(StandardCharsets.UTF_8), date);
        key = hmac(key, region);
        key = hmac(key, "kms");
        key = hmac(key, "aws4_request");
        String signature = hex(hmac(key, toSign));
        String request = "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + contentType + "\r\nX-Amz-Date: " + amzDate
                + "\r\nX-Amz-Target: " + target + "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + accessKeyId + "/" + scope
                + ", SignedHeaders=" + signedHeaders + ", Signature=" + signature + "\r\nContent-Length: "
                + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body;
        return request.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] sha256(String text) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] hmac(byte[] key, String data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    private static String required(String property) {
        String value = System.getProperty(property, "");
        if (value.isEmpty()) {
            throw new IllegalStateException("system property " + property + " is not set: run scripts/bench/sign-path.sh");
        }
        return value;
    }

    private static long jvmCpuNanos() {
        return ((OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    /** utime + stime of a process from /proc, in ns (USER_HZ assumed 100, as on Linux x86_64). */
    private static long processCpuNanos(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            // After the command: state is field 3, utime field 14, stime field 15 (1-based).
            return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) * 10_000_000L;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    private static String loadAverage() {
        try {
            String[] parts = Files.readString(Path.of("/proc/loadavg")).split(" ");
            return parts[0] + " " + parts[1] + " " + parts[2];
        } catch (IOException e) {
            return "?";
        }
    }
}
