package dev.awskms.keycloak.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** docs/troubleshooting.md explains every error code, and only codes that exist. */
@DisplayName("The troubleshooting guide")
class TroubleshootingGuideTest {

    private static final Pattern CODE_HEADING = Pattern.compile("^### `([A-Z_]+)`$", Pattern.MULTILINE);

    @Test
    @DisplayName("has one section for every error code the native library can raise, and no other")
    void hasOneSectionPerErrorCode() throws IOException {
        // Surefire runs in java/; the guide is in the repository's docs/.
        Path guide = Path.of(System.getProperty("user.dir")).resolve("../docs/troubleshooting.md").normalize();
        assertTrue(Files.isRegularFile(guide), guide + " exists");
        List<String> sections = new ArrayList<>();
        Matcher matcher = CODE_HEADING.matcher(Files.readString(guide));
        while (matcher.find()) {
            sections.add(matcher.group(1));
        }

        assertEquals(new TreeSet<>(sections).size(), sections.size(), "each code once: " + sections);
        assertEquals(new TreeSet<>(Arrays.stream(NativeErrorCode.values()).map(Enum::name).toList()),
                new TreeSet<>(sections));
    }
}
