package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;
import org.keycloak.util.JsonSerialization;

/**
 * The library's lifecycle in a JVM: loaded once however many threads race the first call, once
 * per class loader (a redeploy gets a copy of its own), unloaded with its class loader (its
 * {@code JNI_OnUnload} stops its I/O runtime), a registration failure reported as itself, and
 * every global reference it holds counted.
 */
@DisplayName("The native library's lifecycle")
class LibraryLifetimeTest {

    private static long globalReferences() throws IOException {
        return JsonSerialization.mapper.readTree(Native.telemetryStats()).path("jni").path("globalReferences").asLong();
    }

    private static CachedPublicKeys keys() {
        KeyWrapper key = new KeyWrapper();
        key.setKid("lifetime");
        return new CachedPublicKeys(new PublicKeysWrapper(List.of(key)), 0L);
    }

    @Test
    @DisplayName("counts the global references it holds: one per cached key set, shared by its callers, none once evicted")
    void globalReferencesAreCounted() throws IOException {
        String prefix = "lifetime-" + UUID.randomUUID() + "::";
        long before = globalReferences();
        for (int i = 0; i < 5; i++) {
            ReloadStart start = Native.beginPublicKeyReload(prefix + i);
            assertTrue(start.leads());
            Native.completePublicKeyReload(start.permit(), keys());
        }
        assertEquals(before + 5, globalReferences());
        // Hits hand out local references to the same objects: nothing more is held.
        for (int i = 0; i < 5; i++) {
            Native.cachedPublicKeys(prefix + i);
        }
        assertEquals(before + 5, globalReferences());
        Native.evictPublicKeys(prefix + 0);
        assertEquals(before + 4, globalReferences());
        Native.evictPublicKeysByPrefix(prefix);
        assertEquals(before, globalReferences());
    }

    @Test
    @DisplayName("reports a native method table that does not match its class as UnsatisfiedLinkError naming the class")
    void registrationFailureIsReportedAsItself(@TempDir Path dir) throws Exception {
        // A NativeBridge without most of the natives, in a class loader of its own, loading a copy
        // of the library (the JVM loads one file into one class loader only).
        Path sources = Files.createDirectories(dir.resolve("src/dev/awskms/keycloak/internal"));
        Path source = sources.resolve("NativeBridge.java");
        Files.writeString(source, "package dev.awskms.keycloak.internal;\n"
                + "public final class NativeBridge {\n"
                + "    static native String version();\n"
                + "    public static void load(String path) { System.load(path); }\n"
                + "}\n", StandardCharsets.UTF_8);
        Path classes = Files.createDirectories(dir.resolve("classes"));
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertEquals(0, javac.run(null, null, null, "-d", classes.toString(), source.toString()));
        Path library = dir.resolve("libkeycloak_aws_kms-copy.so");
        Files.copy(Path.of(System.getProperty(NativeLibraryLoader.OVERRIDE_PROPERTY)), library);

        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()},
                ClassLoader.getPlatformClassLoader())) {
            Class<?> bridge = Class.forName("dev.awskms.keycloak.internal.NativeBridge", true, loader);
            InvocationTargetException e = org.junit.jupiter.api.Assertions.assertThrows(InvocationTargetException.class,
                    () -> bridge.getMethod("load", String.class).invoke(null, library.toString()));
            UnsatisfiedLinkError error = assertInstanceOf(UnsatisfiedLinkError.class, e.getCause());
            // Not the JVM's "unsupported JNI version 0xFFFFFFFF": the library's own account.
            assertTrue(error.getMessage().contains(
                    "libkeycloak_aws_kms could not register its native methods on dev.awskms.keycloak.internal.NativeBridge"),
                    error.getMessage());
        }
        // The library of this class loader is untouched.
        assertTrue(!Native.version().isEmpty());
    }

    @Test
    @DisplayName("in a fresh JVM: loads once for 16 racing first calls, once more for a second class loader, "
            + "and stops an unloaded copy's runtime")
    void freshJvmLifecycle() throws IOException, InterruptedException, URISyntaxException {
        Path classes = Path.of(Native.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path testClasses = Path.of(LibraryLifetimeProbe.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        ProcessBuilder builder = new ProcessBuilder(java.toString(), "-Xcheck:jni", "-Xmx128m",
                "-cp", testClasses.toString(), LibraryLifetimeProbe.class.getName(),
                classes.toString(), System.getProperty(NativeLibraryLoader.OVERRIDE_PROPERTY))
                .redirectErrorStream(true);
        builder.environment().put("RUST_BACKTRACE", "0");
        Process probe = builder.start();
        boolean ended = probe.waitFor(120, TimeUnit.SECONDS);
        if (!ended) {
            // Before reading: a hung probe never closes its output.
            probe.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        String output = new String(probe.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(ended, "the probe JVM hung:\n" + output);
        assertEquals(0, probe.exitValue(), output);
        assertTrue(output.contains("ALL OK"), output);
    }
}
