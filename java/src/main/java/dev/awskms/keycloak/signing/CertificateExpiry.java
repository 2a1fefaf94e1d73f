package dev.awskms.keycloak.signing;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.jboss.logging.Logger;
import org.keycloak.component.ComponentModel;

/**
 * Warns, once per component and certificate, when the certificate an {@code aws-kms} key publishes
 * ({@code x5c}, SAML) expires within {@link #WARNING_PERIOD} or has expired. A minted certificate is
 * valid for three years and is minted afresh on every save without an upload, so saving the provider
 * renews it; an uploaded one must be replaced by the administrator.
 */
final class CertificateExpiry {

    private static final Logger LOG = Logger.getLogger(CertificateExpiry.class);

    /** How long before the end of its validity a certificate is warned about. */
    static final Duration WARNING_PERIOD = Duration.ofDays(30);

    /** The end of validity last warned about, per component id: one warning per certificate. */
    private static final Map<String, Instant> WARNED = new ConcurrentHashMap<>();

    private CertificateExpiry() {
    }

    /** Logs the warning for the key's certificate of {@code model}, unless given for that certificate already. */
    static void warnOnce(ComponentModel model, X509Certificate certificate, Instant now) {
        if (certificate == null || model.getId() == null) {
            return;
        }
        Instant notAfter = certificate.getNotAfter().toInstant();
        String warning = warning(model, isMinted(model), notAfter, now);
        if (warning != null && firstWarning(model.getId(), notAfter)) {
            LOG.warn(warning);
        }
    }

    /** Whether the certificate in use is the minted one (no upload). */
    static boolean isMinted(ComponentModel model) {
        String uploaded = model.get(KmsKeyAttributes.CERTIFICATE_KEY);
        return uploaded == null || uploaded.isBlank();
    }

    /** The warning for a certificate ending at {@code notAfter}, or null while it has more than the period left. */
    static String warning(ComponentModel model, boolean minted, Instant notAfter, Instant now) {
        if (notAfter.isAfter(now.plus(WARNING_PERIOD))) {
            return null;
        }
        String when = notAfter.isAfter(now)
                ? "expires on " + notAfter + " (in " + Duration.between(now, notAfter).toDays() + " days)"
                : "expired on " + notAfter;
        String remedy = minted
                ? "Save the provider again to mint a new certificate (valid for three years)."
                : "Upload a renewed certificate of the KMS key, or clear the field and save to mint one.";
        return String.format("aws-kms key provider %s (%s): the %s certificate it publishes %s. %s", model.getName(),
                model.getId(), minted ? "minted" : "uploaded", when, remedy);
    }

    /** Records a warning; false if this certificate of the component was warned about already. */
    static boolean firstWarning(String componentId, Instant notAfter) {
        return !notAfter.equals(WARNED.put(componentId, notAfter));
    }

    /** Forgets a removed component. */
    static void forget(String componentId) {
        if (componentId != null) {
            WARNED.remove(componentId);
        }
    }
}
