package dev.awskms.keycloak.signing;

import java.util.stream.Stream;

import org.keycloak.crypto.KeyWrapper;
import org.keycloak.keys.KeyProvider;

/** The one signing key of an {@code aws-kms} component, built by {@link KmsKeyProviderFactory}. */
final class KmsKeyProvider implements KeyProvider {

    private final KeyWrapper key;

    KmsKeyProvider(KeyWrapper key) {
        this.key = key;
    }

    @Override
    public Stream<KeyWrapper> getKeysStream() {
        return Stream.of(key);
    }
}
