package dev.awskms.keycloak.operator;

import java.util.List;

import dev.awskms.keycloak.internal.Native;
import org.jboss.logging.Logger;

/**
 * Keycloak's "PublicKey wasn't found in the storage" line, rate-limited per source: the first of a
 * window at WARN (with how many were only logged at DEBUG since), the others at DEBUG. A flood of
 * tokens with made-up kids therefore writes about one WARN line per source per minute instead of
 * one per token. The window and its count are the native side's ({@link Native#unknownKidNote}).
 */
public final class UnknownKidLog {

    private UnknownKidLog() {
    }

    /** Logs that {@code kid} is not among {@code availableKids} of source {@code modelKey}. */
    public static void log(Logger log, String modelKey, String kid, List<String> availableKids) {
        // A miss is the flood's hot path: with nothing to log, cross no JNI boundary.
        if (!log.isEnabled(Logger.Level.WARN)) {
            return;
        }
        String note = Native.unknownKidNote(modelKey);
        // Keycloak's own wording, which administrators search for.
        if (note != null) {
            log.warnf("PublicKey wasn't found in the storage. Requested kid: '%s' . Available kids: '%s'%s", kid,
                    availableKids, note);
        } else {
            log.debugf("PublicKey wasn't found in the storage. Requested kid: '%s' . Available kids: '%s'", kid,
                    availableKids);
        }
    }
}
