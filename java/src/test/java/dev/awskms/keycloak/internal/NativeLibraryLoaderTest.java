package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The native library loader")
class NativeLibraryLoaderTest {

    @Test
    @DisplayName("names the JAR directory of a platform the same way whatever the JVM vendor calls it")
    void normalisesPlatformNames() {
        assertEquals("linux-x86_64", NativeLibraryLoader.platformDirectory("Linux", "amd64"));
        assertEquals("linux-x86_64", NativeLibraryLoader.platformDirectory("Linux", "x86_64"));
        assertEquals("linux-aarch64", NativeLibraryLoader.platformDirectory("Linux", "aarch64"));
        assertEquals("linux-aarch64", NativeLibraryLoader.platformDirectory("linux", "arm64"));
        assertEquals("/META-INF/native/linux-x86_64/libkeycloak_aws_kms.so",
                NativeLibraryLoader.resourcePath("Linux", "amd64"));
        assertEquals("macosx-aarch64", NativeLibraryLoader.platformDirectory("Mac OS X", "aarch64"));
    }

    @Test
    @DisplayName("extracts the bundled library to a fresh temp file only its owner can read")
    void extractsToAnOwnerOnlyTempFile() throws IOException {
        String resource = NativeLibraryLoader.resourcePath("Linux", "amd64");
        Path first = NativeLibraryLoader.extractToTempFile(resource);
        Path second = NativeLibraryLoader.extractToTempFile(resource);
        try {
            assertFalse(first.equals(second), "each extraction gets its own file");
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(first)));
            try (InputStream bundled = NativeLibraryLoader.class.getResourceAsStream(resource)) {
                assertArrayEquals(bundled.readAllBytes(), Files.readAllBytes(first));
            }
        } finally {
            Files.deleteIfExists(first);
            Files.deleteIfExists(second);
        }
    }

    @Test
    @DisplayName("reports a missing resource as an I/O error")
    void missingResourceIsAnError() {
        IOException e = assertThrows(IOException.class,
                () -> NativeLibraryLoader.extractToTempFile("/META-INF/native/plan9-mips/libkeycloak_aws_kms.so"));
        assertTrue(e.getMessage().contains("not in the provider JAR"), e.getMessage());
    }

    @Test
    @DisplayName("runs the load once, and after a failure repeats the same error instead of retrying")
    void loadsOnceAndRepeatsTheFirstFailure() {
        AtomicInteger attempts = new AtomicInteger();
        NativeLibraryLoader.Once failing = new NativeLibraryLoader.Once(() -> {
            attempts.incrementAndGet();
            throw new NativeLibraryLoadException("os.name=Linux os.arch=amd64 /META-INF/native/x: boom", null);
        });
        NativeLibraryLoadException first = assertThrows(NativeLibraryLoadException.class, failing::run);
        NativeLibraryLoadException second = assertThrows(NativeLibraryLoadException.class, failing::run);
        assertEquals(1, attempts.get());
        assertEquals(first.getMessage(), second.getMessage());
        assertSame(first, second.getCause());
        assertFalse(failing.succeeded());

        AtomicInteger loads = new AtomicInteger();
        NativeLibraryLoader.Once succeeding = new NativeLibraryLoader.Once(loads::incrementAndGet);
        succeeding.run();
        succeeding.run();
        assertEquals(1, loads.get());
        assertTrue(succeeding.succeeded());
    }

    @Test
    @DisplayName("names os, arch, resource path and cause when the JAR has no library for the platform")
    void explainsAMissingPlatform() {
        NativeLibraryLoadException e = assertThrows(NativeLibraryLoadException.class,
                () -> NativeLibraryLoader.load("Linux", "sparcv9", null));
        assertTrue(e.getMessage().contains("os.name=Linux os.arch=sparcv9"), e.getMessage());
        assertTrue(e.getMessage().contains("/META-INF/native/linux-sparcv9/libkeycloak_aws_kms.so"), e.getMessage());
        assertTrue(e.getMessage().contains("not in the provider JAR"), e.getMessage());
        assertTrue(e.getMessage().contains(NativeLibraryLoader.OVERRIDE_PROPERTY), e.getMessage());
        assertTrue(e.getMessage().contains("for linux-x86_64 with glibc 2.34 or newer"), e.getMessage());
    }

    @Test
    @DisplayName("names the override path and cause when the override file cannot be loaded")
    void explainsABadOverride() {
        NativeLibraryLoadException e = assertThrows(NativeLibraryLoadException.class,
                () -> NativeLibraryLoader.load("Linux", "amd64", "/nonexistent/libkeycloak_aws_kms.so"));
        assertTrue(e.getMessage().contains("/nonexistent/libkeycloak_aws_kms.so"), e.getMessage());
        assertTrue(e.getMessage().contains(NativeLibraryLoader.OVERRIDE_PROPERTY), e.getMessage());
        assertTrue(e.getCause() instanceof UnsatisfiedLinkError, String.valueOf(e.getCause()));
    }

    @Test
    @DisplayName("loads the library from the JAR resource in a fresh JVM and leaves no file in the temp directory")
    void loadsFromTheJarResource() throws Exception {
        Path tempDir = Files.createTempDirectory("awskms-loader-test");
        try {
            Process java = new ProcessBuilder(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xcheck:jni",
                    "-Djava.io.tmpdir=" + tempDir,
                    "-cp", System.getProperty("java.class.path"),
                    LoadFromJar.class.getName())
                    .redirectErrorStream(true)
                    .start();
            String output = new String(java.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(java.waitFor(60, TimeUnit.SECONDS), "child JVM did not finish");
            assertEquals(0, java.exitValue(), output);
            assertTrue(output.contains("loaded native library version "), output);
            try (Stream<Path> left = Files.list(tempDir)) {
                assertEquals(List.of(), left.collect(Collectors.toList()), "extracted library left behind");
            }
        } finally {
            try (Stream<Path> left = Files.list(tempDir)) {
                for (Path file : (Iterable<Path>) left::iterator) {
                    Files.deleteIfExists(file);
                }
            }
            Files.deleteIfExists(tempDir);
        }
    }

    /** Run in a child JVM without the override property, so the library comes from the classpath resource. */
    static final class LoadFromJar {
        public static void main(String[] args) {
            if (System.getProperty(NativeLibraryLoader.OVERRIDE_PROPERTY) != null) {
                throw new IllegalStateException("the override property must not be set here");
            }
            System.out.println("loaded native library version " + Native.version());
        }
    }

    @Test
    @DisplayName("loads the library named by the override property")
    void loadsTheOverride() {
        Native.ensureLoaded();
        assertTrue(Native.isLoaded());
    }
}
