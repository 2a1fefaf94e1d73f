package dev.awskms.keycloak.publickeys;

import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.jboss.logging.Logger;
import org.keycloak.broker.oidc.OIDCIdentityProviderConfig;
import org.keycloak.crypto.KeyUse;
import org.keycloak.keys.PublicKeyLoader;
import org.keycloak.keys.loader.ClientPublicKeyLoader;
import org.keycloak.keys.loader.OIDCIdentityProviderPublicKeyLoader;
import org.keycloak.models.ClientModel;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.protocol.oidc.OIDCAdvancedConfigWrapper;
import org.keycloak.services.util.ResolveRelative;

/**
 * A source whose keys Keycloak would download as a plain JWKS: a client using its "JWKS URL", or
 * an OpenID Connect identity provider using its "JWKS URL". Those downloads run natively; every
 * other source keeps Keycloak's loader.
 *
 * <p>How a source is recognised: by the loader's exact class <em>and</em> the model key. The
 * model key alone is not enough (SAML, Kubernetes, SPIFFE and trust identity providers share the
 * {@code <realmId>::idp::<id>} form and download differently, with their own authentication or
 * formats), and the loaders keep their client and configuration in private fields. So the URL is
 * read again through Keycloak's public model API, the way the loader itself reads it. When
 * anything does not resolve (a subclass of a loader, a client not found, no request context to
 * resolve a relative URL), {@link #resolve} answers null and Keycloak's loader runs: never a
 * download Keycloak would not have made.
 */
final class JwksDownloadSource {

    private static final Logger LOG = Logger.getLogger(JwksDownloadSource.class);

    /** {@code PublicKeyStorageUtils.getClientModelCacheKey}. */
    private static final Pattern CLIENT_MODEL_KEY = Pattern.compile("^(.+)::client::(.+)::keyuse::(SIG|ENCRYPTION)$");
    /** {@code PublicKeyStorageUtils.getIdpModelCacheKey}. */
    private static final Pattern IDP_MODEL_KEY = Pattern.compile("^(.+)::idp::(.+)$");

    final String url;
    final KeyUse use;

    JwksDownloadSource(String url, KeyUse use) {
        this.url = Objects.requireNonNull(url, "url");
        this.use = Objects.requireNonNull(use, "use");
    }

    /**
     * The JWKS URL and key use Keycloak's {@code loader} would download for {@code modelKey}, or
     * null when the loader must run itself.
     */
    static JwksDownloadSource resolve(KeycloakSession session, String modelKey, PublicKeyLoader loader) {
        if (loader == null || modelKey == null) {
            return null;
        }
        try {
            if (loader.getClass() == ClientPublicKeyLoader.class) {
                Matcher client = CLIENT_MODEL_KEY.matcher(modelKey);
                return client.matches()
                        ? forClient(session, client.group(1), client.group(2), "SIG".equals(client.group(3)) ? KeyUse.SIG : KeyUse.ENC)
                        : null;
            }
            if (loader.getClass() == OIDCIdentityProviderPublicKeyLoader.class) {
                Matcher idp = IDP_MODEL_KEY.matcher(modelKey);
                return idp.matches() ? forIdentityProvider(session, idp.group(1), idp.group(2)) : null;
            }
        } catch (RuntimeException e) {
            LOG.debugf(e, "Keys of %s load through Keycloak's loader: its JWKS URL did not resolve", modelKey);
        }
        return null;
    }

    /** As {@code ClientPublicKeyLoader}: "Use JWKS URL" on, the URL resolved against the root URL. */
    private static JwksDownloadSource forClient(KeycloakSession session, String realmId, String clientUuid, KeyUse use) {
        RealmModel realm = session.realms().getRealm(realmId);
        ClientModel client = realm == null ? null : session.clients().getClientById(realm, clientUuid);
        if (client == null) {
            return null;
        }
        OIDCAdvancedConfigWrapper config = OIDCAdvancedConfigWrapper.fromClientModel(client);
        if (!config.isUseJwksUrl() || isBlank(config.getJwksUrl())) {
            return null;
        }
        String jwksUrl = config.getJwksUrl();
        String url = jwksUrl.startsWith("/")
                ? ResolveRelative.resolveRelativeUri(session, client.getRootUrl(), jwksUrl)
                // What the line above gives for an absolute URL (${...} replaced), without needing
                // the request's URIs.
                : ResolveRelative.resolveRelativeUri(null, null, client.getRootUrl(), jwksUrl);
        return isBlank(url) ? null : new JwksDownloadSource(url, use);
    }

    /**
     * As {@code OIDCIdentityProviderPublicKeyLoader}: "Use JWKS URL" on, signature keys. Identity
     * providers are looked up in the session's realm, so the model key must be of that realm.
     */
    private static JwksDownloadSource forIdentityProvider(KeycloakSession session, String realmId, String internalId) {
        RealmModel realm = session.getContext().getRealm();
        if (realm == null || !realmId.equals(realm.getId())) {
            return null;
        }
        IdentityProviderModel model = session.identityProviders().getById(internalId);
        if (model == null) {
            return null;
        }
        OIDCIdentityProviderConfig config = new OIDCIdentityProviderConfig(model);
        if (!config.isUseJwksUrl() || isBlank(config.getJwksUrl())) {
            return null;
        }
        return new JwksDownloadSource(config.getJwksUrl(), KeyUse.SIG);
    }

    private static boolean isBlank(String value) {
        return value == null || value.isBlank();
    }

    @Override
    public String toString() {
        return use.getSpecName() + " keys of " + url;
    }
}
