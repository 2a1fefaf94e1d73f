package dev.awskms.keycloak.signing;

import java.util.List;

import org.keycloak.crypto.Algorithm;
import org.keycloak.keys.Attributes;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;

/**
 * The config properties of key provider {@value KmsKeyProviderFactory#ID}, as Keycloak's
 * {@link Attributes} holds those of its own key providers: paired {@code *_KEY} names and
 * {@code *_PROPERTY} form definitions, and {@link #CONFIG_PROPERTIES}, the form in order.
 */
public final class KmsKeyAttributes {

    private KmsKeyAttributes() {
    }

    // Entered by the administrator.

    public static final String KMS_KEY_ID_KEY = "kmsKeyId";
    /** Marked required for the admin console; the native library reports it missing. */
    public static final ProviderConfigProperty KMS_KEY_ID_PROPERTY = new ProviderConfigProperty(KMS_KEY_ID_KEY,
            "KMS key",
            "The AWS KMS key that signs: a key ID (1234abcd-12ab-34cd-56ef-1234567890ab), key ARN, alias name "
                    + "(alias/my-signing-key) or alias ARN. It must be an asymmetric key with key usage SIGN_VERIFY. "
                    + "An alias is resolved when you save; the provider keeps using that key until you save again.",
            ProviderConfigProperty.STRING_TYPE, null, false, true);

    public static final String REGION_KEY = "region";
    public static final ProviderConfigProperty REGION_PROPERTY = new ProviderConfigProperty(REGION_KEY,
            "Region",
            "The AWS region of the key, e.g. eu-west-1. Leave empty if 'KMS key' is an ARN: the ARN names the region.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String ENDPOINT_URL_KEY = "endpointUrl";
    public static final ProviderConfigProperty ENDPOINT_URL_PROPERTY = new ProviderConfigProperty(ENDPOINT_URL_KEY,
            "Endpoint URL",
            "Optional. Call KMS at this URL instead of the regional endpoint, e.g. a VPC endpoint or "
                    + "https://kms-fips.us-east-1.amazonaws.com. Leave empty to use the standard endpoint of the region. "
                    + "Must be https://, unless the Keycloak server allows plain http:// to that host (loopback only, by "
                    + "default).",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String DEFAULT_CREDENTIALS_MODE = "default";
    public static final String ACCESS_KEY_CREDENTIALS_MODE = "access-key";
    public static final String ASSUME_ROLE_CREDENTIALS_MODE = "assume-role";
    public static final String CREDENTIALS_MODE_KEY = "credentialsMode";
    public static final ProviderConfigProperty CREDENTIALS_MODE_PROPERTY = new ProviderConfigProperty(CREDENTIALS_MODE_KEY,
            "Credentials mode",
            "How Keycloak authenticates to KMS. 'default' uses the AWS default credential chain of the Keycloak "
                    + "server (environment variables, web identity, container or EC2 instance role) and stores no "
                    + "secret in Keycloak; prefer it. 'access-key' uses the access key entered below. 'assume-role' "
                    + "assumes the IAM role entered below through STS, as the access key entered below if there is "
                    + "one, else as the default credential chain. The help of each field below says which modes use it.",
            ProviderConfigProperty.LIST_TYPE, DEFAULT_CREDENTIALS_MODE,
            DEFAULT_CREDENTIALS_MODE, ACCESS_KEY_CREDENTIALS_MODE, ASSUME_ROLE_CREDENTIALS_MODE);

    public static final String ACCESS_KEY_ID_KEY = "accessKeyId";
    public static final ProviderConfigProperty ACCESS_KEY_ID_PROPERTY = new ProviderConfigProperty(ACCESS_KEY_ID_KEY,
            "Access key ID",
            "With credentials mode 'access-key' (required): the IAM access key ID (AKIA...); its identity needs "
                    + "kms:DescribeKey, kms:GetPublicKey and kms:Sign on the key. With 'assume-role' (optional): the "
                    + "access key that assumes the role; leave empty to assume it with the default credential chain.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String SECRET_ACCESS_KEY_KEY = "secretAccessKey";
    public static final ProviderConfigProperty SECRET_ACCESS_KEY_PROPERTY = new ProviderConfigProperty(SECRET_ACCESS_KEY_KEY,
            "Secret access key",
            "With credentials mode 'access-key' (required), or 'assume-role' with an access key ID: the secret "
                    + "access key of that access key. Stored in Keycloak's database and shown masked; enter "
                    + "${vault.NAME} to read it from Keycloak's vault instead. Enter it again whenever you change where "
                    + "it is sent: the Region, an endpoint URL, the Role ARN or the account of the KMS key.",
            ProviderConfigProperty.PASSWORD, null, true);

    public static final String ROLE_ARN_KEY = "roleArn";
    public static final ProviderConfigProperty ROLE_ARN_PROPERTY = new ProviderConfigProperty(ROLE_ARN_KEY,
            "Role ARN",
            "With credentials mode 'assume-role' (required): the IAM role to assume, e.g. "
                    + "arn:aws:iam::111122223333:role/keycloak-signer. The role needs kms:DescribeKey, "
                    + "kms:GetPublicKey and kms:Sign on the key, and its trust policy must allow the identity that "
                    + "assumes it.",
            ProviderConfigProperty.STRING_TYPE, null);

    public static final String EXTERNAL_ID_KEY = "externalId";
    public static final ProviderConfigProperty EXTERNAL_ID_PROPERTY = new ProviderConfigProperty(EXTERNAL_ID_KEY,
            "External ID",
            "With credentials mode 'assume-role' (optional): the external ID the role's trust policy requires "
                    + "(sts:ExternalId). Shown masked; enter ${vault.NAME} to read it from Keycloak's vault instead. "
                    + "Enter it again whenever you change where it is sent, as for the secret access key.",
            ProviderConfigProperty.PASSWORD, null, true);

    /**
     * The session name STS records when none is entered; shown as the form default. The native
     * library applies it; a test pins this copy to the native signing catalogue.
     */
    public static final String DEFAULT_ROLE_SESSION_NAME = "keycloak-aws-kms";
    public static final String ROLE_SESSION_NAME_KEY = "roleSessionName";
    public static final ProviderConfigProperty ROLE_SESSION_NAME_PROPERTY = new ProviderConfigProperty(ROLE_SESSION_NAME_KEY,
            "Role session name",
            "With credentials mode 'assume-role': the session name STS records, shown in CloudTrail as who "
                    + "signed. 2 to 64 letters, digits or +=,.@-_; empty means " + DEFAULT_ROLE_SESSION_NAME + ".",
            ProviderConfigProperty.STRING_TYPE, DEFAULT_ROLE_SESSION_NAME);

    public static final String STS_ENDPOINT_URL_KEY = "stsEndpointUrl";
    public static final ProviderConfigProperty STS_ENDPOINT_URL_PROPERTY = new ProviderConfigProperty(STS_ENDPOINT_URL_KEY,
            "STS endpoint URL",
            "With credentials mode 'assume-role' (optional): call STS at this URL, e.g. a VPC endpoint or "
                    + "https://sts.eu-west-1.amazonaws.com. Leave empty to use the standard STS endpoint of the region.",
            ProviderConfigProperty.STRING_TYPE, null);

    /** The form's choices; a test pins them to the algorithms of the native signing catalogue. */
    public static final List<String> ALGORITHMS = List.of(
            Algorithm.RS256, Algorithm.RS384, Algorithm.RS512,
            Algorithm.PS256, Algorithm.PS384, Algorithm.PS512,
            Algorithm.ES256, Algorithm.ES384, Algorithm.ES512);
    public static final String ALGORITHM_KEY = Attributes.ALGORITHM_KEY;
    public static final ProviderConfigProperty ALGORITHM_PROPERTY = new ProviderConfigProperty(ALGORITHM_KEY,
            "Algorithm",
            "The JWS algorithm this key signs with. RS* and PS* need an RSA key (RSA_2048, RSA_3072, RSA_4096); "
                    + "ES256, ES384 and ES512 need an ECC_NIST_P256, ECC_NIST_P384 and ECC_NIST_P521 key.",
            ProviderConfigProperty.LIST_TYPE, Algorithm.RS256, ALGORITHMS.toArray(new String[0]));

    public static final String CERTIFICATE_KEY = Attributes.CERTIFICATE_KEY;
    /** Keycloak's standard certificate upload (File, "X509 Certificate"), with help text for a KMS key. */
    public static final ProviderConfigProperty CERTIFICATE_PROPERTY = new ProviderConfigProperty(CERTIFICATE_KEY,
            Attributes.CERTIFICATE_PROPERTY.getLabel(),
            "Optional. Upload the PEM certificate of this KMS key (its public key must be the KMS key's), or leave "
                    + "empty to have one minted and signed by the KMS key, with the realm name as subject. A minted "
                    + "certificate is replaced by a new one every time you save.",
            Attributes.CERTIFICATE_PROPERTY.getType(), null);

    // Written by validation from the native library's answer, never taken from the request.
    // Declared read-only: Keycloak's admin GET and export drop config keys a factory does not
    // declare (StripSecretsUtils).

    /** The resolved key ARN (an alias is resolved at save time). */
    public static final String KEY_ARN_KEY = "keyArn";
    public static final ProviderConfigProperty KEY_ARN_PROPERTY = writtenOnSave(KEY_ARN_KEY, "Key ARN",
            "Written when you save: the ARN of the KMS key that signs. An alias in 'KMS key' is resolved to this "
                    + "key when you save; save again after re-pointing the alias.");
    /** The KMS key spec, e.g. {@code RSA_2048}. */
    public static final String KEY_SPEC_KEY = "keySpec";
    public static final ProviderConfigProperty KEY_SPEC_PROPERTY = writtenOnSave(KEY_SPEC_KEY, "Key spec",
            "Written when you save: the KMS key spec, e.g. RSA_2048 or ECC_NIST_P256.");
    /** The JOSE key type of the key, {@code RSA} or {@code EC}. */
    public static final String KEY_TYPE_KEY = "keyType";
    public static final ProviderConfigProperty KEY_TYPE_PROPERTY = writtenOnSave(KEY_TYPE_KEY, "Key type",
            "Written when you save: the type of the key in tokens and in the realm's JWKS, RSA or EC.");
    /** The JOSE curve ({@code crv}) of an EC key, e.g. {@code P-256}; absent for RSA. */
    public static final String CURVE_KEY = "curve";
    public static final ProviderConfigProperty CURVE_PROPERTY = writtenOnSave(CURVE_KEY, "Curve",
            "Written when you save: the curve of an EC key (P-256, P-384 or P-521); empty for an RSA key.");
    /** Base64url SHA-256 of the SPKI DER, as Keycloak's {@code KeyUtils.createKeyId}. */
    public static final String KID_KEY = Attributes.KID_KEY;
    public static final ProviderConfigProperty KID_PROPERTY = writtenOnSave(KID_KEY, "Key ID (kid)",
            "Written when you save: the kid of the key in tokens and in the realm's JWKS, the SHA-256 of the public key.");
    /** Base64 of the SPKI DER from KMS {@code GetPublicKey}. */
    public static final String PUBLIC_KEY_KEY = "publicKey";
    public static final ProviderConfigProperty PUBLIC_KEY_PROPERTY = writtenOnSave(PUBLIC_KEY_KEY, "Public key",
            "Written when you save: the public key of the KMS key (base64 SubjectPublicKeyInfo), as KMS returned it.");
    /**
     * PEM of the certificate minted and signed by the KMS key when none was uploaded. Kept apart
     * from {@link #CERTIFICATE_KEY} and not declared, so that the form stays empty and the next save
     * mints afresh. (Not declared, it is also left out of the admin GET and of exports; the key
     * carries it all the same, and an import mints a new one.)
     */
    public static final String MINTED_CERTIFICATE_KEY = "mintedCertificate";

    /** The form, in order. */
    public static final List<ProviderConfigProperty> CONFIG_PROPERTIES = ProviderConfigurationBuilder.create()
            .property(Attributes.PRIORITY_PROPERTY)
            .property(Attributes.ENABLED_PROPERTY)
            .property(Attributes.ACTIVE_PROPERTY)
            .property(KMS_KEY_ID_PROPERTY)
            .property(REGION_PROPERTY)
            .property(ENDPOINT_URL_PROPERTY)
            .property(CREDENTIALS_MODE_PROPERTY)
            .property(ACCESS_KEY_ID_PROPERTY)
            .property(SECRET_ACCESS_KEY_PROPERTY)
            .property(ROLE_ARN_PROPERTY)
            .property(EXTERNAL_ID_PROPERTY)
            .property(ROLE_SESSION_NAME_PROPERTY)
            .property(STS_ENDPOINT_URL_PROPERTY)
            .property(ALGORITHM_PROPERTY)
            .property(CERTIFICATE_PROPERTY)
            .property(KEY_ARN_PROPERTY)
            .property(KEY_SPEC_PROPERTY)
            .property(KEY_TYPE_PROPERTY)
            .property(CURVE_PROPERTY)
            .property(KID_PROPERTY)
            .property(PUBLIC_KEY_PROPERTY)
            .build();

    /** A read-only text property that validation fills in. */
    private static ProviderConfigProperty writtenOnSave(String name, String label, String helpText) {
        // Keycloak 26.7's admin console shows read-only properties as ordinary inputs: say so in the help.
        ProviderConfigProperty property = new ProviderConfigProperty(name, label,
                helpText + " Nothing to enter: a value typed here is replaced when you save.",
                ProviderConfigProperty.STRING_TYPE, null);
        property.setReadOnly(true);
        return property;
    }
}
