package dev.awskms.keycloak.publickeys;

import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

import org.jboss.logging.Logger;
import org.keycloak.models.KeycloakSession;
import org.keycloak.truststore.TruststoreProvider;

/**
 * The certificates the native JWKS download trusts, so that it trusts what Keycloak's own HTTP
 * client trusts: Keycloak's truststore (which already holds the JVM's default CAs unless the
 * administrator replaced them), or the JVM's default trust when Keycloak has no truststore.
 */
final class TrustedCertificates {

    private static final Logger LOG = Logger.getLogger(TrustedCertificates.class);

    private TrustedCertificates() {
    }

    /** Base64 DER of every trusted certificate, without duplicates. */
    static List<String> forJwksDownloads(KeycloakSession session) {
        TruststoreProvider truststoreProvider = session.getProvider(TruststoreProvider.class);
        KeyStore truststore = truststoreProvider == null ? null : truststoreProvider.getTruststore();
        List<X509Certificate> certificates;
        if (truststore != null) {
            certificates = certificatesIn(truststore);
            LOG.debugf("JWKS downloads trust the %d certificates of Keycloak's truststore", certificates.size());
        } else {
            certificates = jvmDefault();
            LOG.debugf("Keycloak has no truststore; JWKS downloads trust the JVM's %d default CA certificates",
                    certificates.size());
        }
        return base64Der(certificates);
    }

    static List<X509Certificate> certificatesIn(KeyStore truststore) {
        List<X509Certificate> certificates = new ArrayList<>();
        try {
            for (String alias : Collections.list(truststore.aliases())) {
                Certificate certificate = truststore.getCertificate(alias);
                if (certificate instanceof X509Certificate) {
                    certificates.add((X509Certificate) certificate);
                }
            }
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("Could not read Keycloak's truststore: " + e.getMessage(), e);
        }
        return certificates;
    }

    static List<X509Certificate> jvmDefault() {
        try {
            TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            factory.init((KeyStore) null);
            List<X509Certificate> certificates = new ArrayList<>();
            for (TrustManager manager : factory.getTrustManagers()) {
                if (manager instanceof X509TrustManager) {
                    certificates.addAll(List.of(((X509TrustManager) manager).getAcceptedIssuers()));
                }
            }
            return certificates;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("Could not read the JVM's default trusted certificates: " + e.getMessage(), e);
        }
    }

    static List<String> base64Der(List<X509Certificate> certificates) {
        Set<String> encoded = new LinkedHashSet<>();
        for (X509Certificate certificate : certificates) {
            try {
                encoded.add(Base64.getEncoder().encodeToString(certificate.getEncoded()));
            } catch (GeneralSecurityException e) {
                LOG.debugf("Skipping trusted certificate %s: it does not encode: %s",
                        certificate.getSubjectX500Principal(), e.getMessage());
            }
        }
        return List.copyOf(encoded);
    }
}
