package dev.awskms.keycloak.internal;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.ref.WeakReference;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import com.sun.net.httpserver.HttpServer;

/**
 * Runs in a JVM of its own ({@link LibraryLifetimeTest} forks it), with the provider's classes
 * only in class loaders it makes itself, so that the first load of the library really is the
 * first: {@code main(classesDirectory, overrideLibrary)} prints one line per check,
 * {@code OK <check>} or {@code FAIL <check>: <why>}, and exits 0 when every check passed.
 *
 * <p>The checks: many threads racing the first native call of a class loader load the library
 * once and all get answers; a second class loader over the same classes (a redeploy) loads its
 * own copy and works beside the first; when the first class loader is collected, the JVM unloads
 * its copy and {@code JNI_OnUnload} stops that copy's I/O runtime while the second goes on; and
 * one library file loaded by two class loaders fails the second with a clear message.
 */
public final class LibraryLifetimeProbe {

    /** {@code NativeLibraryLoader.OVERRIDE_PROPERTY}, written out: this class must not load it. */
    private static final String OVERRIDE_PROPERTY = "awskms.native.library";
    private static final int RACERS = 16;
    private static final String RUNTIME_THREAD = "aws-kms-io";
    private static final List<String> failures = new ArrayList<>();

    private LibraryLifetimeProbe() {
    }

    public static void main(String[] args) {
        try {
            probe(args);
        } catch (Throwable e) {
            // Whatever went wrong, end the JVM (the JWKS server's thread would keep it alive) and say why.
            e.printStackTrace(System.out);
            System.out.println("FAILED: " + e + "; checks so far: " + failures);
            System.exit(2);
        }
    }

    private static void probe(String[] args) throws Exception {
        URL classes = Path.of(args[0]).toUri().toURL();
        String overrideLibrary = args[1];

        HttpServer jwks = jwksServer();
        String jwksUrl = "http://127.0.0.1:" + jwks.getAddress().getPort() + "/jwks";

        URLClassLoader first = isolated(classes);
        racingFirstLoad(first);
        // A download that succeeds: nothing thrown, so nothing of this class loader is held.
        check("the first loader downloads a JWKS", String.valueOf(call(first, "fetchJwks", jwksUrl, "sig"))
                .contains("\"keys\""), "");
        int threadsWithOne = threadsNamed(RUNTIME_THREAD);
        check("the first loader's I/O runtime runs", threadsWithOne >= 2, threadsWithOne + " threads");
        if (threadsWithOne < 2) {
            System.exit(1);
        }

        URLClassLoader second = isolated(classes);
        Object version = call(second, "version");
        check("a second class loader loads its own copy and answers",
                version instanceof String && !((String) version).isEmpty(), String.valueOf(version));
        check("two copies are mapped, one per class loader", extractedLibraries().size() == 2,
                extractedLibraries().toString());
        check("the second loader downloads a JWKS", String.valueOf(call(second, "fetchJwks", jwksUrl, "sig"))
                .contains("\"keys\""), "");
        refusedDownload(second, "second");
        check("both copies answer side by side", call(first, "version").equals(call(second, "version")), "");
        int threadsWithTwo = threadsNamed(RUNTIME_THREAD);

        WeakReference<ClassLoader> collected = new WeakReference<>(first);
        first.close();
        first = null;
        boolean unloaded = awaitCollected(collected);
        check("the first class loader is collected once nothing uses it", unloaded, "");
        // JNI_OnUnload runs right after the collection (the JDK's cleaner thread); its runtime stops.
        long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (threadsNamed(RUNTIME_THREAD) > threadsWithTwo - 2 && System.nanoTime() < giveUp) {
            System.gc();
            Thread.sleep(50);
        }
        int threadsAfterUnload = threadsNamed(RUNTIME_THREAD);
        check("JNI_OnUnload stopped the unloaded copy's I/O runtime", threadsAfterUnload <= threadsWithTwo - 2,
                threadsWithTwo + " threads before, " + threadsAfterUnload + " after");
        refusedDownload(second, "second, after the first was unloaded");
        check("the second copy still answers after the first was unloaded", call(second, "version") != null, "");
        second.close();

        // One file, two class loaders: the JVM refuses the second; the loader says so clearly.
        System.setProperty(OVERRIDE_PROPERTY, overrideLibrary);
        // The test JVM's override library may be the test-hooks build, which also registers
        // NativeTestHooks: these loaders see the test classes too.
        URL testClasses = LibraryLifetimeProbe.class.getProtectionDomain().getCodeSource().getLocation();
        URLClassLoader third = isolated(classes, testClasses);
        URLClassLoader fourth = isolated(classes, testClasses);
        check("the override library loads in one class loader", call(third, "version") != null, "");
        try {
            call(fourth, "version");
            check("a second class loader loading the same file fails", false, "it loaded");
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            String message = String.valueOf(cause.getMessage());
            check("a second class loader loading the same file fails with a clear message",
                    cause.getClass().getName().endsWith("NativeLibraryLoadException")
                            && message.contains("Could not load the AWS KMS native library")
                            && message.contains("already loaded in another classloader")
                            && message.contains(OVERRIDE_PROPERTY),
                    cause + "");
            try {
                call(fourth, "version");
            } catch (InvocationTargetException again) {
                check("the failure is reported again on the next call, not retried",
                        String.valueOf(again.getCause().getMessage()).contains("already loaded in another classloader"),
                        String.valueOf(again.getCause()));
            }
        }
        check("the first of them is unaffected", call(third, "version") != null, "");

        jwks.stop(0);
        System.out.println(failures.isEmpty() ? "ALL OK" : "FAILED: " + failures);
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    /** A class loader with the provider's classes and the platform's, nothing of the application. */
    private static URLClassLoader isolated(URL... classes) {
        return new URLClassLoader(classes, ClassLoader.getPlatformClassLoader());
    }

    private static void racingFirstLoad(ClassLoader loader) throws Exception {
        CyclicBarrier start = new CyclicBarrier(RACERS);
        Set<Object> answers = ConcurrentHashMap.newKeySet();
        List<Throwable> errors = new ArrayList<>();
        List<Thread> racers = new ArrayList<>();
        for (int i = 0; i < RACERS; i++) {
            Thread racer = new Thread(() -> {
                try {
                    start.await(10, TimeUnit.SECONDS);
                    answers.add(call(loader, "version"));
                } catch (Throwable e) {
                    synchronized (errors) {
                        errors.add(e);
                    }
                }
            }, "racer-" + i);
            racers.add(racer);
            racer.start();
        }
        for (Thread racer : racers) {
            racer.join(TimeUnit.SECONDS.toMillis(30));
            check("racer " + racer.getName() + " returned", !racer.isAlive(), "still running after 30 s");
        }
        check(RACERS + " threads racing the first call all got an answer", errors.isEmpty() && answers.size() == 1,
                "answers " + answers + ", errors " + errors);
        check("the library was loaded once", extractedLibraries().size() == 1, extractedLibraries().toString());
    }

    private static HttpServer jwksServer() throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/jwks", exchange -> {
            byte[] body = "{\"keys\":[]}".getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        return server;
    }

    /** A download from a port nobody listens on: a NativeException. */
    private static void refusedDownload(ClassLoader loader, String which) throws Exception {
        try {
            call(loader, "fetchJwks", "http://127.0.0.1:9/jwks", "sig");
            check("a download from a closed port fails (" + which + ")", false, "it succeeded");
        } catch (InvocationTargetException e) {
            check("a download from a closed port fails with NativeException (" + which + ")",
                    e.getCause().getClass().getName().endsWith("NativeException"), String.valueOf(e.getCause()));
        }
    }

    private static Object call(ClassLoader loader, String method, String... args) throws Exception {
        Class<?> nativeClass = Class.forName("dev.awskms.keycloak.internal.Native", true, loader);
        Class<?>[] types = new Class<?>[args.length];
        java.util.Arrays.fill(types, String.class);
        Method target = nativeClass.getMethod(method, types);
        return target.invoke(null, (Object[]) args);
    }

    private static boolean awaitCollected(WeakReference<ClassLoader> loader) throws InterruptedException {
        long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (loader.get() != null && System.nanoTime() < giveUp) {
            System.gc();
            Thread.sleep(50);
        }
        return loader.get() == null;
    }

    /** The extracted copies of the library this process has mapped (deleted files included). */
    private static Set<String> extractedLibraries() throws IOException {
        Set<String> files = new TreeSet<>();
        for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
            int at = line.indexOf('/');
            if (at >= 0 && line.contains("libkeycloak_aws_kms-")) {
                files.add(line.substring(at));
            }
        }
        return files;
    }

    /** Threads of this process with that name, Java's and native ones alike. */
    private static int threadsNamed(String name) throws IOException {
        try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
            return (int) tasks.filter(task -> {
                try {
                    return Files.readString(task.resolve("comm")).trim().equals(name);
                } catch (IOException e) {
                    return false;
                }
            }).count();
        }
    }

    private static void check(String what, boolean passed, String detail) {
        if (passed) {
            System.out.println("OK " + what);
        } else {
            System.out.println("FAIL " + what + ": " + detail);
            failures.add(what);
        }
    }
}
