package dev.awskms.keycloak.signing;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.security.PrivateKey;
import java.security.Signature;
import java.security.SignatureException;
import java.text.MessageFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import dev.awskms.keycloak.KeycloakStubs;
import dev.awskms.keycloak.internal.Native;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.keycloak.Config;
import org.keycloak.component.ComponentModel;
import org.keycloak.component.ComponentValidationException;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.util.JsonSerialization;

/** The glue of the server policy and of the stored form of secrets; the rules themselves are Rust's. */
@DisplayName("The aws-kms security glue")
class SecurityPolicyTest {

    private static String shownToAdministrator(ComponentValidationException e) {
        return MessageFormat.format(e.getMessage(), e.getParameters());
    }

    /** Keycloak's view of the options: {@code values} by option name, nothing else set. */
    private static Config.Scope options(Map<String, String> values) {
        return options(values, Set.of());
    }

    /**
     * Keycloak's view of the options: {@code values} by option name, and the full names of the
     * options it has (those it could not expand included), as {@code getPropertyNames} gives them.
     */
    private static Config.Scope options(Map<String, String> values, Set<String> propertyNames) {
        return KeycloakStubs.stub(Config.Scope.class, (proxy, method, args) -> {
            if (method.getName().equals("get")) {
                String value = values.get((String) args[0]);
                return value != null ? value : args.length == 2 ? args[1] : null;
            }
            if (method.getName().equals("getPropertyNames")) {
                return propertyNames;
            }
            return KeycloakStubs.unsupported(Config.Scope.class, method.getName());
        });
    }

    @Nested
    @DisplayName("server options")
    class ServerOptions {

        @AfterEach
        void restoreTheDefaultPolicy() {
            Native.configureSigningPolicy("{}");
        }

        @Test
        @DisplayName("are documented with the native library's names, command-line spellings and defaults")
        void metadataIsTheNativeCatalogue() throws Exception {
            JsonNode catalogue = JsonSerialization.mapper.readTree(Native.signingCatalogue());
            Map<String, String> nativeDefaults = new LinkedHashMap<>();
            for (JsonNode option : catalogue.path("serverOptions")) {
                nativeDefaults.put(option.path("name").asText(), option.path("default").asText());
                String kebab = option.path("name").asText().replaceAll("([A-Z])", "-$1").toLowerCase();
                assertEquals("--spi-keys--aws-kms--" + kebab, option.path("option").asText(),
                        "Keycloak spells option " + option.path("name").asText() + " this way");
            }
            Map<String, String> documented = new LinkedHashMap<>();
            for (ProviderConfigProperty option : new KmsKeyProviderFactory().getConfigMetadata()) {
                documented.put(option.getName(), String.valueOf(option.getDefaultValue()));
                assertFalse(option.getHelpText().isBlank(), option.getName());
            }
            assertEquals(nativeDefaults, documented);
        }

        @Test
        @DisplayName("hand the native library only the options that are set, as written")
        void onlySetOptionsAreSent() throws Exception {
            assertTrue(SigningPolicyOptions.from(options(Map.of())).isEmpty());
            SigningPolicyOptions set = SigningPolicyOptions.from(options(Map.of(
                    "allowedKeyIds", "alias/keycloak-${realm}-*", "keySharedAcrossRealms", "true",
                    "notAnOption", "ignored")));
            assertEquals(Map.of("allowedKeyIds", "alias/keycloak-${realm}-*", "keySharedAcrossRealms", "true"),
                    JsonSerialization.readValue(set.toNativeJson(), Map.class));
        }

        @Test
        @DisplayName("stop the server when an option is set but Keycloak could not expand its value, never taking the default")
        void anUnreadableOptionFailsInit() {
            // What an unescaped ${realm} does: Keycloak lists the option but get() answers null.
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SigningPolicyOptions.from(
                    options(Map.of(), Set.of("kc.spi-keys--aws-kms--allowed-key-ids"))));
            assertTrue(e.getMessage().startsWith("Option --spi-keys--aws-kms--allowed-key-ids is set, but Keycloak "
                    + "could not read its value"), e.getMessage());
            assertTrue(e.getMessage().contains("$${realm}"), e.getMessage());
            assertTrue(SigningPolicyOptions.from(options(Map.of(), Set.of("kc.spi-keys--rsa--priority"))).isEmpty());
        }

        @Test
        @DisplayName("stop the server at init with the option's name when the native library refuses a value")
        void aRefusedOptionFailsInit() {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new KmsKeyProviderFactory()
                    .init(options(Map.of("allowedCredentialsModes", "default,instance-role"))));
            assertTrue(e.getMessage().contains("--spi-keys--aws-kms--allowed-credentials-modes"), e.getMessage());
            assertTrue(e.getMessage().contains("'instance-role' is not a credentials mode"), e.getMessage());
            assertDoesNotThrow(() -> new KmsKeyProviderFactory().init(options(Map.of())));
        }
        @Test
        @DisplayName("accept every example of the documentation as Keycloak hands it over")
        void theDocumentedExamplesAreAccepted() throws Exception {
            // Surefire runs in java/; the examples are in the repository's README and docs/.
            java.nio.file.Path root = java.nio.file.Path.of(System.getProperty("user.dir")).resolve("..").normalize();
            java.util.regex.Pattern example = java.util.regex.Pattern.compile(
                    "--spi-keys--aws-kms--([a-z-]+)=(?:'([^']*)'|([^\\s'`]+))");
            Set<String> known = new java.util.HashSet<>();
            SigningPolicyOptions.CONFIG_METADATA.forEach(option -> known.add(option.getName()));
            int examples = 0;
            for (String document : List.of("README.md", "docs/iam.md", "docs/security.md")) {
                String text = java.nio.file.Files.readString(root.resolve(document));
                for (String block : text.split("```")) {
                    Map<String, String> values = new LinkedHashMap<>();
                    java.util.regex.Matcher matcher = example.matcher(block);
                    while (matcher.find()) {
                        String name = camelCase(matcher.group(1));
                        assertTrue(known.contains(name), document + " names an option that does not exist: "
                                + matcher.group(0));
                        String value = matcher.group(2) != null ? matcher.group(2) : matcher.group(3);
                        // Keycloak's configuration turns $${realm} into ${realm} before the provider reads it.
                        values.put(name, value.replace("$${", "${"));
                        examples++;
                    }
                    if (!values.isEmpty()) {
                        assertDoesNotThrow(() -> new KmsKeyProviderFactory().init(options(values)),
                                document + ": " + values);
                    }
                }
            }
            assertTrue(examples >= 6, "the README's examples were found: " + examples);
        }

        private static String camelCase(String dashed) {
            StringBuilder name = new StringBuilder();
            for (String part : dashed.split("-")) {
                name.append(name.length() == 0 ? part : Character.toUpperCase(part.charAt(0)) + part.substring(1));
            }
            return name.toString();
        }
    }

    @Nested
    @DisplayName("stored secrets")
    class StoredForm {

        private ComponentModel component(String secret, String externalId) {
            ComponentModel model = new ComponentModel();
            model.setId("component-1");
            model.setProviderId(KmsKeyProviderFactory.ID);
            model.put(KmsKeyAttributes.CREDENTIALS_MODE_KEY, KmsKeyAttributes.ASSUME_ROLE_CREDENTIALS_MODE);
            if (secret != null) {
                model.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, secret);
            }
            if (externalId != null) {
                model.put(KmsKeyAttributes.EXTERNAL_ID_KEY, externalId);
            }
            return model;
        }

        @Test
        @DisplayName("are marked once validated, and every reader gets the value without the marker")
        void markedAndStripped() {
            ComponentModel model = component("secret-1", "${vault.external}");
            StoredSecrets.markStored(model);
            assertEquals("{stored}secret-1", model.get(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY));
            assertEquals("{stored}${vault.external}", model.get(KmsKeyAttributes.EXTERNAL_ID_KEY));
            StoredSecrets.markStored(model);
            assertEquals("{stored}secret-1", model.get(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY), "marked once");

            KeycloakStubs.FakeVault vault = new KeycloakStubs.FakeVault(Map.of("external", "resolved-external-id"));
            ResolvedSecrets secrets = ResolvedSecrets.resolve(KeycloakStubs.session(vault), model);
            assertEquals("secret-1", secrets.value(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY));
            assertEquals("resolved-external-id", secrets.value(KmsKeyAttributes.EXTERNAL_ID_KEY));
            assertEquals(List.of("${vault.external}"), vault.lookups(), "the reference, not its stored form");
            assertNull(StoredSecrets.value(null));
            assertEquals("plain", StoredSecrets.value("plain"));
        }

        @Test
        @DisplayName("count as kept when they come back in stored form, or unmarked but equal to a legacy stored value")
        void keptOrEntered() {
            ComponentModel markedStored = component("{stored}secret-1", "{stored}external-1");
            assertEquals(List.of("secretAccessKey", "externalId"),
                    StoredSecrets.kept(component("{stored}secret-1", "{stored}external-1"), markedStored));
            assertEquals(List.of(), StoredSecrets.kept(component("secret-1", "external-1"), markedStored),
                    "re-typed identical values are entered in this request");
            assertEquals(List.of("externalId"),
                    StoredSecrets.kept(component("new-secret", "{stored}external-1"), markedStored));

            ComponentModel legacyStored = component("secret-1", "external-1");
            assertEquals(List.of("secretAccessKey"),
                    StoredSecrets.kept(component("secret-1", "external-2"), legacyStored));

            assertEquals(List.of(), StoredSecrets.kept(component("{stored}secret-1", null), null),
                    "without a stored component (an import) nothing is kept");
        }
    }

    /** Saves and signatures against the KMS emulator. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    @DisplayName("against KMS")
    class AgainstKms {

        private final KmsKeyProviderFactory factory = new KmsKeyProviderFactory();
        private KmsEmulator kms;

        @BeforeAll
        void startEmulator() throws Exception {
            KeycloakStubs.installCrypto();
            KmsJcaProvider.register();
            kms = KmsEmulator.start("alias/java-policy=RSA_2048", "alias/java-shared=RSA_2048");
        }

        @AfterAll
        void stopEmulator() throws Exception {
            if (kms != null) {
                kms.close();
            }
        }

        @AfterEach
        void restoreTheDefaultPolicy() {
            Native.configureSigningPolicy("{}");
        }

        private KeycloakSession session(RealmModel... realms) {
            return KeycloakStubs.session(new KeycloakStubs.FakeVault(Map.of()), realms);
        }

        @Test
        @DisplayName("refuse a kept secret with a changed endpoint, and accept it entered again")
        void aKeptSecretDoesNotFollowAChangedEndpoint() {
            ComponentModel model = kms.component("component-kept", "alias/java-policy", "RS256");
            factory.validateConfiguration(session(), KeycloakStubs.realm("kept"), model);
            assertEquals("{stored}" + KmsEmulator.SECRET_ACCESS_KEY, model.get(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY));
            RealmModel realm = KeycloakStubs.realm("kept", List.of(new ComponentModel(model)));

            // What Keycloak validates after the admin console sent the mask back: the stored value.
            ComponentModel unchanged = new ComponentModel(model);
            unchanged.put(KmsKeyAttributes.ROLE_SESSION_NAME_KEY, "renamed");
            assertDoesNotThrow(() -> factory.validateConfiguration(session(realm), realm, unchanged));

            ComponentModel moved = new ComponentModel(model);
            moved.put(KmsKeyAttributes.ENDPOINT_URL_KEY, kms.kmsUrl() + "/");
            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(session(realm), realm, moved)));
            assertEquals("'Secret access key' was saved for another destination; enter it again to use it with the "
                    + "changed Endpoint URL. [INVALID_CONFIGURATION]", shown);

            moved.put(KmsKeyAttributes.SECRET_ACCESS_KEY_KEY, KmsEmulator.SECRET_ACCESS_KEY);
            assertDoesNotThrow(() -> factory.validateConfiguration(session(realm), realm, moved));
        }

        @Test
        @DisplayName("refuse a key outside the allowed patterns for the realm, naming the option")
        void aKeyOutsideThePolicyIsRefused() {
            Native.configureSigningPolicy("{\"allowedKeyIds\":\"alias/java-${realm}\"}");
            ComponentModel model = kms.component("component-outside", "alias/java-shared", "RS256");
            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(session(), KeycloakStubs.realm("policy"), model)));
            assertTrue(shown.startsWith("KMS key 'alias/java-shared' (" + kms.keyArn("alias/java-shared")
                    + ") is not allowed for realm 'policy' on this server (server option "
                    + "--spi-keys--aws-kms--allowed-key-ids)"), shown);
            assertTrue(shown.endsWith("[POLICY_DENIED]"), shown);
            assertNull(model.get(KmsKeyAttributes.KEY_ARN_KEY));

            ComponentModel own = kms.component("component-own", "alias/java-policy", "RS256");
            assertDoesNotThrow(() -> factory.validateConfiguration(session(), KeycloakStubs.realm("policy"), own));
        }

        @Test
        @DisplayName("refuse a key that a provider of another realm stores, and allow it with sharing on")
        void aKeyOfAnotherRealmIsRefused() {
            ComponentModel first = kms.component("component-first", "alias/java-shared", "RS256");
            factory.validateConfiguration(session(), KeycloakStubs.realm("first"), first);
            RealmModel firstRealm = KeycloakStubs.realm("first", List.of(first));
            RealmModel secondRealm = KeycloakStubs.realm("second");

            ComponentModel second = kms.component("component-second", "alias/java-shared", "RS256");
            String shown = shownToAdministrator(assertThrows(ComponentValidationException.class,
                    () -> factory.validateConfiguration(session(firstRealm, secondRealm), secondRealm, second)));
            assertEquals("KMS key " + kms.keyArn("alias/java-shared") + " is already in use by another realm "
                    + "(server option --spi-keys--aws-kms--key-shared-across-realms). [POLICY_DENIED]", shown);
            assertFalse(shown.contains("first"), shown);

            // The realm's own providers may share it.
            ComponentModel again = kms.component("component-again", "alias/java-shared", "RS256");
            assertDoesNotThrow(() -> factory.validateConfiguration(session(firstRealm, secondRealm), firstRealm, again));

            Native.configureSigningPolicy("{\"keySharedAcrossRealms\":\"true\"}");
            assertDoesNotThrow(() -> factory.validateConfiguration(session(firstRealm, secondRealm), secondRealm,
                    second));
        }

        @Test
        @DisplayName("let a stored provider the policy no longer allows fail every signature with the policy's message")
        void aStoredProviderOutsideATightenedPolicyCannotSign() throws Exception {
            ComponentModel model = kms.component("component-tightened", "alias/java-policy", "RS256");
            model.setParentId("id-tightened");
            RealmModel realm = KeycloakStubs.realm("tightened");
            factory.validateConfiguration(session(), realm, model);

            Native.configureSigningPolicy("{\"allowedCredentialsModes\":\"assume-role\"}");
            KeyWrapper key = factory.create(session(realm), model).getKeysStream().findFirst().orElseThrow();
            assertNotNull(key.getPublicKey(), "the key stays in place, so no software key replaces it");
            for (int attempt = 0; attempt < 2; attempt++) {
                Signature signer = Signature.getInstance("SHA256withRSA");
                signer.initSign((PrivateKey) key.getPrivateKey());
                signer.update(new byte[] {1});
                SignatureException e = assertThrows(SignatureException.class, signer::sign);
                assertTrue(e.getMessage().contains("may not sign under this server's policy: Credentials mode "
                        + "'access-key' is not allowed on this server (server option "
                        + "--spi-keys--aws-kms--allowed-credentials-modes)"), e.getMessage());
            }
        }
    }
}
