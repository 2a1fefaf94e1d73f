package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.PublicKeysWrapper;

/**
 * Pins {@link CachedPublicKeys#keyByKidAndAlg} to Keycloak's {@link PublicKeysWrapper#getKeyByKidAndAlg}
 * on the Keycloak version this build compiles against (the java and java-next stages run it on
 * both): a hit must choose exactly the key Keycloak's storage would.
 */
@DisplayName("A cached source's key selection")
class CachedPublicKeysTest {

    private static final String[] KIDS = {"a", "b", null};
    private static final String[] ALGORITHMS = {"ES256", "RS256", null};
    private static final String[] TYPES = {"EC", "RSA", null};
    private static final String[] WANTED_KIDS = {"a", "b", "c", null};
    private static final String[] WANTED_ALGORITHMS = {"ES256", "RS256", "PS256", null};

    @Test
    @DisplayName("chooses, for every kid and algorithm, the very key Keycloak's own search chooses")
    void everyLookupChoosesTheVeryKeyKeycloaksOwnSearchChooses() {
        List<KeyWrapper> variants = new ArrayList<>();
        for (String kid : KIDS) {
            for (String algorithm : ALGORITHMS) {
                for (String type : TYPES) {
                    variants.add(key(kid, algorithm, type));
                }
            }
        }
        int compared = 0;
        // Every list of up to three keys drawn from the variants (repeats included: a JWKS may
        // publish one kid twice).
        for (int length = 0; length <= 3; length++) {
            int lists = (int) Math.pow(variants.size(), length);
            for (int index = 0; index < lists; index++) {
                List<KeyWrapper> list = new ArrayList<>(length);
                for (int position = 0, rest = index; position < length; position++, rest /= variants.size()) {
                    list.add(copy(variants.get(rest % variants.size())));
                }
                compared += compareEveryLookup(List.copyOf(list));
            }
        }
        assertEquals(16 * (1 + 27 + 27 * 27 + 27 * 27 * 27), compared);
    }

    @Test
    @DisplayName("fails on a list with a null key where Keycloak's own search fails")
    void aListWithANullKeyFailsAsKeycloaksOwnSearchFails() {
        PublicKeysWrapper keys = new PublicKeysWrapper(Arrays.asList(key("a", "ES256", "EC"), null));
        CachedPublicKeys cached = new CachedPublicKeys(keys, 0);
        // Found before the null: both answer.
        assertSame(keys.getKeyByKidAndAlg("a", "ES256"), cached.keyByKidAndAlg("a", "ES256"));
        // Reaching the null: both throw.
        assertThrows(NullPointerException.class, () -> keys.getKeyByKidAndAlg("b", "ES256"));
        assertThrows(NullPointerException.class, () -> cached.keyByKidAndAlg("b", "ES256"));
    }

    private static int compareEveryLookup(List<KeyWrapper> list) {
        PublicKeysWrapper keys = new PublicKeysWrapper(list);
        CachedPublicKeys cached = new CachedPublicKeys(keys, 0);
        int compared = 0;
        for (String wantedKid : WANTED_KIDS) {
            for (String wantedAlgorithm : WANTED_ALGORITHMS) {
                // Fresh strings: a request's kid is never the cached key's own String object.
                String kid = wantedKid == null ? null : new String(wantedKid);
                String algorithm = wantedAlgorithm == null ? null : new String(wantedAlgorithm);
                KeyWrapper expected = keys.getKeyByKidAndAlg(kid, algorithm);
                KeyWrapper actual = cached.keyByKidAndAlg(kid, algorithm);
                assertSame(expected, actual, () -> "kid " + kid + ", algorithm " + algorithm + " in " + describe(list));
                compared++;
            }
        }
        return compared;
    }

    private static KeyWrapper key(String kid, String algorithm, String type) {
        KeyWrapper key = new KeyWrapper();
        key.setKid(kid);
        key.setAlgorithm(algorithm);
        key.setType(type);
        return key;
    }

    private static KeyWrapper copy(KeyWrapper key) {
        return key(key.getKid(), key.getAlgorithm(), key.getType());
    }

    private static String describe(List<KeyWrapper> list) {
        List<String> keys = new ArrayList<>();
        for (KeyWrapper key : list) {
            keys.add(key.getKid() + "/" + key.getAlgorithm() + "/" + key.getType());
        }
        return keys.toString();
    }
}
