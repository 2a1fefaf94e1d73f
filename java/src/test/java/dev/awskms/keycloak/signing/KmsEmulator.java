package dev.awskms.keycloak.signing;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.JsonNode;
import org.keycloak.component.ComponentModel;
import org.keycloak.util.JsonSerialization;

/**
 * The project's KMS emulator as a subprocess (contract: docs/design.md, "KMS emulator"). Tests
 * that need it fail, with a message saying how to build it, while the binary has not been built.
 */
final class KmsEmulator implements AutoCloseable {

    /** The emulator's default credentials. */
    static final String ACCESS_KEY_ID = "AKIAEMULATOR00000001";
    static final String SECRET_ACCESS_KEY = "emulator-secret-access-key-0001";

    private final Process process;
    private final String kmsUrl;
    private final String controlUrl;
    private final String region;
    private final Map<String, String> keyArns;
    /** Null if this emulator does not serve STS. */
    private final String stsUrl;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private KmsEmulator(Process process, JsonNode ready) {
        this.process = process;
        this.kmsUrl = ready.get("kms").asText();
        this.controlUrl = ready.get("control").asText();
        this.region = ready.get("region").asText();
        this.keyArns = JsonSerialization.mapper.convertValue(ready.get("keys"),
                JsonSerialization.mapper.getTypeFactory().constructMapType(Map.class, String.class, String.class));
        if (!ready.hasNonNull("sts")) {
            throw new IllegalStateException("the KMS emulator did not announce its STS endpoint: " + ready);
        }
        this.stsUrl = ready.get("sts").asText();
    }

    /**
     * Starts the emulator with the given keys, e.g. {@code "alias/java-rsa=RSA_2048"}, or fails the
     * calling test if the binary (system property {@code awskms.test.emulator}) does not exist.
     */
    static KmsEmulator start(String... createKeys) throws IOException, InterruptedException {
        return start(List.of(), createKeys);
    }

    /**
     * Starts the emulator with more command-line options, e.g. {@code --credentials AKID:SECRET:deny=Sign}
     * (given credentials replace the default ones), or fails the calling test as {@link #start(String...)}.
     */
    static KmsEmulator start(List<String> options, String... createKeys) throws IOException, InterruptedException {
        String binary = binary();
        List<String> command = new ArrayList<>(List.of(binary, "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"));
        command.addAll(options);
        for (String key : createKeys) {
            command.add("--create-key");
            command.add(key);
        }
        // Surefire runs in the module directory; the log sits beside the test reports.
        File log = new File("target", "kms-emulator.log");
        Process process = new ProcessBuilder(command)
                .redirectError(ProcessBuilder.Redirect.appendTo(log))
                .start();
        BufferedReader stdout = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> firstLine = CompletableFuture.supplyAsync(() -> {
            try {
                return stdout.readLine();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        String line;
        try {
            line = firstLine.get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            process.destroyForcibly();
            throw new IllegalStateException("KMS emulator did not report its endpoints; see " + log, e);
        }
        if (line == null) {
            process.destroyForcibly();
            throw new IllegalStateException("KMS emulator exited before reporting its endpoints; see " + log);
        }
        // Keep draining stdout so the emulator never blocks on a full pipe.
        Thread drain = new Thread(() -> {
            try {
                while (stdout.readLine() != null) {
                    // discard
                }
            } catch (IOException ignored) {
                // the process ended
            }
        }, "kms-emulator-stdout");
        drain.setDaemon(true);
        drain.start();
        return new KmsEmulator(process, JsonSerialization.mapper.readTree(line));
    }

    private static String binary() {
        String binary = System.getProperty("awskms.test.emulator", "");
        if (binary.isEmpty() || !Files.isExecutable(Path.of(binary))) {
            throw new IllegalStateException("KMS emulator not built (" + binary
                    + "); build it with: cargo build --release -p kms-emulator (scripts/build.sh does)");
        }
        return binary;
    }

    /** The STS endpoint for {@code --role} roles (served on the KMS port). */
    String stsUrl() {
        return stsUrl;
    }

    String kmsUrl() {
        return kmsUrl;
    }

    String region() {
        return region;
    }

    String keyArn(String alias) {
        return keyArns.get(alias);
    }

    /** A component configured for this emulator with its default access key. */
    ComponentModel component(String id, String kmsKeyId, String algorithm) {
        ComponentModel model = new ComponentModel();
        model.setId(id);
        model.setName(id);
        model.setProviderId(KmsKeyProviderFactory.ID);
        model.setProviderType("org.keycloak.keys.KeyProvider");
        model.put("priority", "200");
        model.put("enabled", "true");
        model.put("active", "true");
        model.put(KmsKeyAttributes.KMS_KEY_ID_KEY, kmsKeyId);
        model.put(KmsKeyAttributes.REGION_KEY, region);
        model.put(KmsKeyAttributes.ENDPOINT_URL_KEY, kmsUrl);
        model.put(KmsKeyAttributes.CREDENTIALS_MODE_KEY, KmsKeyAttributes.ACCESS_KEY_CREDENTIALS_MODE);
        model.put(KmsKeyAttributes.ACCESS_KEY_ID_KEY, ACCESS_KEY_ID);
        model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, SECRET_ACCESS_KEY);
        model.put(KmsKeyAttributes.ALGORITHM_KEY, algorithm);
        return model;
    }

    /** {@code PUT /faults} with a JSON body such as {@code {"mode":"down"}}. */
    void setFaults(String json) throws IOException, InterruptedException {
        control(HttpRequest.newBuilder(URI.create(controlUrl + "/faults"))
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(json)));
    }

    /** {@code DELETE /faults}. */
    void clearFaults() throws IOException, InterruptedException {
        control(HttpRequest.newBuilder(URI.create(controlUrl + "/faults")).DELETE());
    }

    private void control(HttpRequest.Builder request) throws IOException, InterruptedException {
        HttpResponse<String> response = http.send(request.timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() / 100 != 2) {
            throw new IllegalStateException("emulator control call failed: " + response.statusCode() + " " + response.body());
        }
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
