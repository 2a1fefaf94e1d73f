package dev.awskms.keycloak.operator;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.internal.Native;
import org.jboss.logging.Logger;
import org.keycloak.util.JsonSerialization;

/**
 * The one thread that brings the native library's log records into Keycloak's logging. Rust never
 * calls Java: it queues its records (bounded, the oldest dropped first and counted), and this daemon
 * thread waits in {@link Native#drainLogRecords} with a timeout and writes each record to the JBoss
 * logger of its category ({@code dev.awskms.keycloak.native.signing}, {@code ...publickeys},
 * {@code dev.awskms.keycloak.native}; docs/operations.md). It hands the native side the level each
 * category is enabled at when the library is first loaded and again whenever Keycloak's logging
 * changes them, so {@code --log-level=dev.awskms.keycloak.native.signing:debug} works as for any
 * Keycloak category.
 *
 * <p>The thread never loads the library (it waits until something else did), and {@link #stop} ends
 * it promptly: it wakes the native wait and joins for a bounded time. Being a daemon thread, it
 * cannot keep the JVM from exiting either.
 */
public final class NativeLogDrain {

    /** The longest one native wait lasts; also how often a stop request is noticed without a wake. */
    static final long WAIT_MILLIS = 1_000;
    /** How often the levels of the categories are compared with what the native side was given. */
    static final long LEVEL_CHECK_MILLIS = 5_000;
    /** How often the thread looks whether the library has been loaded yet. */
    static final long LOAD_POLL_MILLIS = 500;

    private static final Logger LOG = Logger.getLogger(NativeLogDrain.class);

    /** Where records go; JBoss Logging in production, a list in tests. */
    interface Sink {
        void log(String category, Logger.Level level, String message);
    }

    private final Sink sink;
    private final BooleanSupplier libraryLoaded;
    private volatile boolean stopping;
    private Thread thread;
    private String levelsGiven;
    private long levelsCheckedAt;

    NativeLogDrain(Sink sink, BooleanSupplier libraryLoaded) {
        this.sink = sink;
        this.libraryLoaded = libraryLoaded;
    }

    /** A drain into JBoss Logging that waits for the library to be loaded by someone else. */
    public static NativeLogDrain toJBossLogging() {
        return new NativeLogDrain((category, level, message) -> Logger.getLogger(category).log(level, message),
                Native::isLoaded);
    }

    /** Starts the thread (once). */
    public synchronized void start() {
        if (thread != null) {
            return;
        }
        thread = new Thread(this::run, "aws-kms-native-log");
        thread.setDaemon(true);
        thread.start();
    }

    /** Ends the thread, waiting at most {@code graceMillis} for it; records still queued are written first. */
    public void stop(long graceMillis) {
        stopping = true;
        Thread running;
        synchronized (this) {
            running = thread;
        }
        if (running == null) {
            return;
        }
        try {
            if (libraryLoaded.getAsBoolean()) {
                Native.wakeLogDrain();
            }
        } catch (RuntimeException | LinkageError e) {
            LOG.debugf("Could not wake the native log thread: %s", e);
        }
        running.interrupt();
        try {
            running.join(graceMillis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Whether the thread is running. */
    boolean isRunning() {
        Thread running;
        synchronized (this) {
            running = thread;
        }
        return running != null && running.isAlive();
    }

    private void run() {
        while (!stopping) {
            try {
                if (!libraryLoaded.getAsBoolean()) {
                    Thread.sleep(LOAD_POLL_MILLIS);
                    continue;
                }
                giveLevelsIfChanged();
                drainOnce(WAIT_MILLIS);
            } catch (InterruptedException e) {
                // A stop request; the loop condition decides.
            } catch (RuntimeException | LinkageError e) {
                LOG.debugf("The native log thread failed (%s); trying again in a second", e);
                pause();
            }
        }
        try {
            if (libraryLoaded.getAsBoolean()) {
                drainOnce(0);
            }
        } catch (RuntimeException | LinkageError e) {
            LOG.debugf("Could not write the last native log records: %s", e);
        }
    }

    private static void pause() {
        try {
            Thread.sleep(WAIT_MILLIS);
        } catch (InterruptedException e) {
            // A stop request; the loop condition decides.
        }
    }

    /** Hands the native side the categories' levels if they changed since it was last told (or never). */
    void giveLevelsIfChanged() {
        long now = System.nanoTime();
        if (levelsGiven != null && now - levelsCheckedAt < LEVEL_CHECK_MILLIS * 1_000_000L) {
            return;
        }
        levelsCheckedAt = now;
        String levels = levelsJson();
        if (!levels.equals(levelsGiven)) {
            Native.configureLogLevels(levels);
            levelsGiven = levels;
            LOG.debugf("Native log levels: %s", levels);
        }
    }

    /** {@code {"<category>":"<level>"...}}: the most verbose level JBoss Logging has enabled for each native category. */
    static String levelsJson() {
        Map<String, String> levels = new LinkedHashMap<>();
        for (String category : Native.logCategories()) {
            levels.put(category, nativeLevel(Logger.getLogger(category)));
        }
        try {
            return JsonSerialization.writeValueAsString(levels);
        } catch (IOException e) {
            throw new IllegalStateException("Could not write the native log levels", e);
        }
    }

    /** The native name of the most verbose level {@code logger} has enabled. */
    static String nativeLevel(Logger logger) {
        if (logger.isTraceEnabled()) {
            return "TRACE";
        }
        if (logger.isDebugEnabled()) {
            return "DEBUG";
        }
        if (logger.isInfoEnabled()) {
            return "INFO";
        }
        if (logger.isEnabled(Logger.Level.WARN)) {
            return "WARN";
        }
        return logger.isEnabled(Logger.Level.ERROR) ? "ERROR" : "OFF";
    }

    /**
     * Writes the queued records to the sink, waiting up to {@code waitMillis} for the first.
     *
     * @return how many records were written
     */
    int drainOnce(long waitMillis) {
        JsonNode drained;
        try {
            drained = JsonSerialization.mapper.readTree(Native.drainLogRecords(waitMillis));
        } catch (IOException e) {
            throw new IllegalStateException("The native log records are not JSON", e);
        }
        long dropped = drained.path("dropped").asLong();
        if (dropped > 0) {
            LOG.warnf("%d log records of the native library were dropped: more were made than could be written "
                    + "(lower the level of the dev.awskms.keycloak.native categories)", dropped);
        }
        int written = 0;
        for (JsonNode record : drained.path("records")) {
            sink.log(record.path("category").asText(), level(record.path("level").asText()),
                    record.path("message").asText());
            written++;
        }
        return written;
    }

    private static Logger.Level level(String nativeLevel) {
        switch (nativeLevel) {
            case "ERROR":
                return Logger.Level.ERROR;
            case "WARN":
                return Logger.Level.WARN;
            case "INFO":
                return Logger.Level.INFO;
            case "DEBUG":
                return Logger.Level.DEBUG;
            default:
                return Logger.Level.TRACE;
        }
    }
}
