package dev.awskms.keycloak.operator;

import dev.awskms.keycloak.internal.Native;
import io.micrometer.core.instrument.Metrics;
import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProvider;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProviderFactory;

/**
 * What the operator sees of the extension: the native log thread ({@link NativeLogDrain}) and the
 * meters ({@link KmsMetrics}) live as long as this factory, which Keycloak starts with the server
 * and closes on shutdown; the admin resource {@code /admin/realms/{realm}/aws-kms} is the status
 * view of the realm's aws-kms keys ({@link KmsStatusResource}).
 *
 * <p>Nothing here loads the native library: the log thread and the meters wait until signing or
 * the public key storage loaded it.
 */
public final class KmsOperatorResourceProviderFactory implements AdminRealmResourceProviderFactory {

    public static final String ID = "aws-kms";

    /** How long shutdown waits for the log thread to write its last records. */
    static final long STOP_GRACE_MILLIS = 2_000;
    /** How often new meter tags are looked for. */
    static final long METER_REFRESH_MILLIS = 5_000;

    private static final Logger LOG = Logger.getLogger(KmsOperatorResourceProviderFactory.class);

    private NativeLogDrain drain;
    private KmsMetrics metrics;
    private Thread meterRefresh;

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public AdminRealmResourceProvider create(KeycloakSession session) {
        return new KmsStatusResourceProvider();
    }

    @Override
    public void init(Config.Scope config) {
        // Nothing to read; no native code runs here (Keycloak also builds factories at build time).
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
        drain = NativeLogDrain.toJBossLogging();
        drain.start();
        try {
            metrics = KmsMetrics.register(Metrics.globalRegistry);
            meterRefresh = new Thread(this::refreshMeters, "aws-kms-meters");
            meterRefresh.setDaemon(true);
            meterRefresh.start();
        } catch (LinkageError e) {
            LOG.debugf("Micrometer is not available; the aws-kms meters are not registered: %s", e);
        }
    }

    private void refreshMeters() {
        while (!Thread.currentThread().isInterrupted()) {
            try {
                Thread.sleep(METER_REFRESH_MILLIS);
                if (Native.isLoaded()) {
                    metrics.refresh();
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException | LinkageError e) {
                LOG.debugf("Could not refresh the aws-kms meters: %s", e);
            }
        }
    }

    @Override
    public void close() {
        if (meterRefresh != null) {
            meterRefresh.interrupt();
        }
        if (drain != null) {
            drain.stop(STOP_GRACE_MILLIS);
        }
    }
}
