package dev.awskms.keycloak.internal;

import java.util.concurrent.ConcurrentHashMap;

/**
 * The ids the native public key cache handed out, by source key, so that a lookup passes a number
 * instead of converting the key's string on every call (docs/design.md, "JNI").
 *
 * <p>An id is only a name, not an answer: it holds no keys, no freshness and no decision. The
 * native cache checks the id on every call and answers an id that names no cached source any more
 * (evicted here or by another node, idled out, dropped by the LRU bound) as unknown; the caller then
 * asks by key and remembers the new id. Forgetting an id therefore only costs one call by key, and
 * remembering a stale one cannot serve anything the native cache would not. Evictions and "clear"
 * forget their ids anyway, so that the map does not keep keys the cache dropped. Bounded: past
 * {@value #MAX_IDS} keys the map starts over.
 */
final class SourceIds {

    /** Far above the default 1000 cached sources; a map this full is about 3 MB. */
    static final int MAX_IDS = 16_384;

    private static final ConcurrentHashMap<String, Long> IDS = new ConcurrentHashMap<>();

    private SourceIds() {
    }

    /** The source's id, or 0 when none is remembered. */
    static long get(String sourceKey) {
        Long id = IDS.get(sourceKey);
        return id == null ? 0L : id;
    }

    /** Remembers the id the native cache gave for the source; 0 (not cached) forgets it. */
    static void remember(String sourceKey, long id) {
        if (id == 0) {
            IDS.remove(sourceKey);
            return;
        }
        if (IDS.size() >= MAX_IDS && !IDS.containsKey(sourceKey)) {
            IDS.clear();
        }
        IDS.put(sourceKey, id);
    }

    static void forget(String sourceKey) {
        IDS.remove(sourceKey);
    }

    static void forgetPrefix(String sourceKeyPrefix) {
        IDS.keySet().removeIf(sourceKey -> sourceKey.startsWith(sourceKeyPrefix));
    }

    static void clear() {
        IDS.clear();
    }

    /** Remembered ids; for tests. */
    static int size() {
        return IDS.size();
    }
}
