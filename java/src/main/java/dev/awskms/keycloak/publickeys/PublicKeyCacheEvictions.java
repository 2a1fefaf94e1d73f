package dev.awskms.keycloak.publickeys;

import java.util.Collection;
import java.util.List;
import java.util.stream.Collectors;

import dev.awskms.keycloak.internal.Native;
import org.jboss.logging.Logger;
import org.keycloak.cluster.ClusterEvent;
import org.keycloak.cluster.ClusterProvider;
import org.keycloak.keys.infinispan.PublicKeyStorageInvalidationEvent;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.cache.infinispan.ClearCacheEvent;

/**
 * Evicting cached keys on this node and, through Keycloak's {@link ClusterProvider}, on every other
 * node.
 *
 * <p>The cluster messages reuse Keycloak's own event classes, {@link PublicKeyStorageInvalidationEvent}
 * (one string) and {@link ClearCacheEvent}: the distribution already registers their ProtoStream
 * schema, which every event sent between nodes needs, whereas a class of ours would need a schema
 * of its own generated and registered. They travel under task keys of our own, so Keycloak's
 * Infinispan key cache never mistakes them for its own messages, and the task key says what the
 * string is (a source key, or a prefix such as {@code "<realmId>::"}).
 *
 * <p>A node that never loaded the native library has nothing cached, so evicting there is
 * skipped rather than loading the library for it.
 */
final class PublicKeyCacheEvictions {

    private static final Logger LOG = Logger.getLogger(PublicKeyCacheEvictions.class);

    static final String EVICT_TASK_KEY = "NATIVE_LRU_PUBLIC_KEYS_EVICT";
    static final String EVICT_PREFIX_TASK_KEY = "NATIVE_LRU_PUBLIC_KEYS_EVICT_PREFIX";
    static final String CLEAR_TASK_KEY = "NATIVE_LRU_PUBLIC_KEYS_CLEAR";

    private PublicKeyCacheEvictions() {
    }

    /** Makes this node act on the evictions other nodes broadcast. */
    static void registerClusterListeners(ClusterProvider cluster) {
        cluster.registerListener(EVICT_TASK_KEY, event -> {
            if (event instanceof PublicKeyStorageInvalidationEvent) {
                evictLocally(List.of(((PublicKeyStorageInvalidationEvent) event).getCacheKey()), List.of());
            }
        });
        cluster.registerListener(EVICT_PREFIX_TASK_KEY, event -> {
            if (event instanceof PublicKeyStorageInvalidationEvent) {
                evictLocally(List.of(), List.of(((PublicKeyStorageInvalidationEvent) event).getCacheKey()));
            }
        });
        cluster.registerListener(CLEAR_TASK_KEY, event -> clearLocally());
    }

    /** Evicts here, then tells the other nodes. Never throws: a failed eviction is logged. */
    static void evictEverywhere(KeycloakSession session, Collection<String> sourceKeys, Collection<String> prefixes) {
        evictLocally(sourceKeys, prefixes);
        broadcast(session, EVICT_TASK_KEY, events(sourceKeys));
        broadcast(session, EVICT_PREFIX_TASK_KEY, events(prefixes));
    }

    /** Clears here, then tells the other nodes. Never throws: a failure is logged. */
    static void clearEverywhere(KeycloakSession session) {
        clearLocally();
        broadcast(session, CLEAR_TASK_KEY, List.of(ClearCacheEvent.getInstance()));
    }

    static void evictLocally(Collection<String> sourceKeys, Collection<String> prefixes) {
        if (!Native.isLoaded()) {
            return;
        }
        try {
            for (String sourceKey : sourceKeys) {
                Native.evictPublicKeys(sourceKey);
            }
            for (String prefix : prefixes) {
                Native.evictPublicKeysByPrefix(prefix);
            }
            LOG.debugf("Evicted public keys of %s and of every source starting with %s", sourceKeys, prefixes);
        } catch (RuntimeException e) {
            LOG.warnf(e, "Could not evict public keys of %s / %s from the cache", sourceKeys, prefixes);
        }
    }

    static void clearLocally() {
        if (!Native.isLoaded()) {
            return;
        }
        try {
            Native.clearPublicKeys();
            LOG.debug("Cleared the public key cache");
        } catch (RuntimeException e) {
            LOG.warnf(e, "Could not clear the public key cache");
        }
    }

    private static List<ClusterEvent> events(Collection<String> keys) {
        return keys.stream().map(PublicKeyStorageInvalidationEvent::create).collect(Collectors.toList());
    }

    private static void broadcast(KeycloakSession session, String taskKey, List<ClusterEvent> events) {
        if (events.isEmpty()) {
            return;
        }
        try {
            ClusterProvider cluster = session.getProvider(ClusterProvider.class);
            if (cluster == null) {
                LOG.debugf("No cluster provider: %s stays on this node", taskKey);
                return;
            }
            // ignoreSender: this node has already acted.
            cluster.notify(taskKey, events, true);
        } catch (RuntimeException e) {
            LOG.warnf(e, "Could not send %s to the other cluster nodes; their cached keys expire by the cache limits",
                    taskKey);
        }
    }
}
