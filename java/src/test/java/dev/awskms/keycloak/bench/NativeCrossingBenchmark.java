package dev.awskms.keycloak.bench;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.Adler32;

import dev.awskms.keycloak.internal.CachedPublicKeys;
import dev.awskms.keycloak.internal.Native;
import dev.awskms.keycloak.internal.ReloadStart;
import org.keycloak.crypto.PublicKeysWrapper;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Where a {@code native-lru} hit spends its time, without Keycloak's key selection: the bare
 * cache natives beside the cheapest JNI call the JDK has. Not a comparison with Infinispan (that
 * is {@link PublicKeyStorageBenchmark}); a profile, for BENCHMARKS.md's "where the time goes".
 *
 * <ul>
 * <li>{@link #emptyJniCall()}: {@code Adler32.update(int)}, a static native with two {@code int}
 * arguments that HotSpot does not intrinsify: the crossing itself.</li>
 * <li>{@link #cacheHit()}: the cache native of a hit, returning the cached object.</li>
 * <li>{@link #cacheMiss()}: the same native for a source that is not cached (no object returned).</li>
 * <li>{@link #reloadThrottled()}: a reload inside the window, as after a hit without the kid.</li>
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms256m", "-Xmx256m"})
public class NativeCrossingBenchmark {

    static final String SOURCE = PublicKeyStorageBenchmark.SOURCE + "::crossing";
    static final String MISSING = PublicKeyStorageBenchmark.SOURCE + "::not-cached";

    private final Adler32 adler = new Adler32();
    private CachedPublicKeys stored;

    @Setup(Level.Trial)
    public void setUp() {
        Native.configurePublicKeyCache("{\"minTimeBetweenRequests\":3600}");
        ReloadStart start = Native.beginPublicKeyReload(SOURCE);
        if (!start.leads()) {
            throw new IllegalStateException("expected to lead the load of " + SOURCE);
        }
        stored = Native.completePublicKeyReload(start.permit(),
                new CachedPublicKeys(new PublicKeysWrapper(List.of()), 0L));
        if (Native.cachedPublicKeys(SOURCE) != stored) {
            throw new IllegalStateException("the cache does not hand back the stored object");
        }
    }

    @Benchmark
    public long emptyJniCall() {
        adler.update(1);
        return adler.getValue();
    }

    @Benchmark
    public Object cacheHit() {
        return Native.cachedPublicKeys(SOURCE);
    }

    @Benchmark
    public Object cacheMiss() {
        return Native.cachedPublicKeys(MISSING);
    }

    /** The reload a hit whose kid is unknown makes next: throttled, answered with the current keys. */
    @Benchmark
    public Object reloadThrottled() {
        return Native.beginPublicKeyReload(SOURCE).answer();
    }

    @Benchmark
    @Threads(2)
    public Object cacheHitTwoThreads() {
        return cacheHit();
    }
}
