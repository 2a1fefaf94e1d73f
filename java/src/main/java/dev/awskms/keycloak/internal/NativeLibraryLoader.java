package dev.awskms.keycloak.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Locale;

/**
 * Loads {@code libkeycloak_aws_kms.so} once per class loader.
 *
 * <p>Nothing here runs at class initialisation: Keycloak instantiates provider factories while it
 * builds (augments) the server, where no native code may be loaded. {@link Native}, the only
 * caller, invokes {@link #ensureLoaded()} before every native call.
 *
 * <p>Where the library comes from:
 * <ol>
 *   <li>the system property {@value #OVERRIDE_PROPERTY}, an absolute path (development and tests);</li>
 *   <li>otherwise the provider JAR's {@code /META-INF/native/<os>-<arch>/libkeycloak_aws_kms.so},
 *       copied to a fresh owner-only temp file because the dynamic linker needs a real file.</li>
 * </ol>
 *
 * <p>A failure is remembered and reported again on every later attempt instead of retrying: a
 * library whose {@code JNI_OnLoad} failed may be half-initialised, and loading it again would hide
 * the first, meaningful error.
 */
final class NativeLibraryLoader {

    /** System property naming the library file to load instead of the copy inside the JAR. */
    static final String OVERRIDE_PROPERTY = "awskms.native.library";

    static final String LIBRARY_FILE_NAME = "libkeycloak_aws_kms.so";

    /** The platforms this JAR carries a library for, as {@link #platformDirectory} names them. */
    static final String BUNDLED_PLATFORMS = "linux-x86_64";

    /**
     * The oldest glibc the bundled library runs with (the highest {@code GLIBC_} symbol version it
     * needs). scripts/build.sh reads this line and fails when the built library needs another one.
     */
    static final String GLIBC_FLOOR = "2.34";

    private static final Once LIBRARY = new Once(NativeLibraryLoader::load);

    private NativeLibraryLoader() {
    }

    /**
     * Loads the library unless this class loader already did.
     *
     * @throws NativeLibraryLoadException if it cannot be loaded, now or at an earlier attempt
     */
    static void ensureLoaded() {
        LIBRARY.run();
    }

    /** Whether the library has been loaded by this class loader. */
    static boolean isLoaded() {
        return LIBRARY.succeeded();
    }

    /**
     * Runs an action at most once, successfully or not. Later calls return at once after a
     * success, or throw the first failure again. Thread-safe; the fast path is one volatile read.
     */
    static final class Once {
        private final Runnable action;
        private final Object lock = new Object();
        private volatile boolean succeeded;
        /** Guarded by {@link #lock}. */
        private NativeLibraryLoadException failure;

        Once(Runnable action) {
            this.action = action;
        }

        void run() {
            if (succeeded) {
                return;
            }
            synchronized (lock) {
                if (succeeded) {
                    return;
                }
                if (failure != null) {
                    throw failure.repeated();
                }
                try {
                    action.run();
                    succeeded = true;
                } catch (NativeLibraryLoadException e) {
                    failure = e;
                    throw e;
                }
            }
        }

        boolean succeeded() {
            return succeeded;
        }
    }

    private static void load() {
        load(System.getProperty("os.name", "unknown"), System.getProperty("os.arch", "unknown"),
                System.getProperty(OVERRIDE_PROPERTY));
    }

    /** Loads the override file if given, else the JAR's library for the platform. */
    static void load(String osName, String osArch, String override) {
        if (override != null && !override.isBlank()) {
            try {
                System.load(override);
            } catch (RuntimeException | LinkageError e) {
                throw new NativeLibraryLoadException(String.format(
                        "Could not load the AWS KMS native library on os.name=%s os.arch=%s from %s (set by system property %s): %s",
                        osName, osArch, override, OVERRIDE_PROPERTY, e), e);
            }
            return;
        }

        String resourcePath = resourcePath(osName, osArch);
        Path extracted = null;
        try {
            extracted = extractToTempFile(resourcePath);
            System.load(extracted.toString());
        } catch (IOException | RuntimeException | LinkageError e) {
            throw new NativeLibraryLoadException(String.format(
                    "Could not load the AWS KMS native library on os.name=%s os.arch=%s from JAR resource %s%s: %s. "
                            + "This JAR carries the library for %s with glibc %s or newer (a 'GLIBC_2.xx not found' "
                            + "error means an older glibc, e.g. RHEL 8 or Amazon Linux 2; musl systems such as Alpine "
                            + "are not supported); a temp directory mounted noexec also prevents loading (set "
                            + "java.io.tmpdir, or system property %s to a library file)",
                    osName, osArch, resourcePath, extracted == null ? "" : " (extracted to " + extracted + ")",
                    e, BUNDLED_PLATFORMS, GLIBC_FLOOR, OVERRIDE_PROPERTY), e);
        } finally {
            if (extracted != null) {
                // The loaded mapping outlives the file on Linux; deleting now leaves nothing behind
                // even if the JVM is killed. deleteOnExit stays registered as a fallback.
                try {
                    Files.deleteIfExists(extracted);
                } catch (IOException ignored) {
                    // deleteOnExit will try again.
                }
            }
        }
    }

    /** {@code /META-INF/native/<os>-<arch>/libkeycloak_aws_kms.so} for the given JVM platform properties. */
    static String resourcePath(String osName, String osArch) {
        return "/META-INF/native/" + platformDirectory(osName, osArch) + "/" + LIBRARY_FILE_NAME;
    }

    /**
     * The JAR's directory name for a platform, e.g. {@code linux-x86_64}: the JVM reports the same
     * machine as amd64 or x86_64 (aarch64 or arm64) depending on the vendor.
     */
    static String platformDirectory(String osName, String osArch) {
        String os = osName.toLowerCase(Locale.ROOT);
        os = os.startsWith("linux") ? "linux" : os.replaceAll("[^a-z0-9]", "");
        String arch = osArch.toLowerCase(Locale.ROOT);
        switch (arch) {
            case "amd64":
            case "x86_64":
            case "x64":
                arch = "x86_64";
                break;
            case "aarch64":
            case "arm64":
                arch = "aarch64";
                break;
            default:
                arch = arch.replaceAll("[^a-z0-9_]", "");
        }
        return os + "-" + arch;
    }

    /**
     * Copies a resource of this JAR to a new temp file readable and writable only by the owner,
     * with a random name, so no other local user can swap the library between copy and load.
     */
    static Path extractToTempFile(String resourcePath) throws IOException {
        try (InputStream in = NativeLibraryLoader.class.getResourceAsStream(resourcePath)) {
            if (in == null) {
                throw new IOException("the resource is not in the provider JAR");
            }
            Path file = Files.createTempFile("libkeycloak_aws_kms-", ".so",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            file.toFile().deleteOnExit();
            // Write into the file just created (not Files.copy with REPLACE_EXISTING, which would
            // recreate it with default permissions).
            try (OutputStream out = Files.newOutputStream(file, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                in.transferTo(out);
            } catch (IOException e) {
                Files.deleteIfExists(file);
                throw e;
            }
            return file;
        }
    }
}
