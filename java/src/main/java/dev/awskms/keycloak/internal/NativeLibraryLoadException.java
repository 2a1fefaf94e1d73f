package dev.awskms.keycloak.internal;

/**
 * The native library could not be loaded. The message names the platform, where the library was
 * looked for, and why it failed; nothing in it is secret.
 */
public final class NativeLibraryLoadException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    NativeLibraryLoadException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * The same report for a later attempt: a fresh stack trace for the new caller, the first
     * failure as the cause.
     */
    NativeLibraryLoadException repeated() {
        return new NativeLibraryLoadException(getMessage(), this);
    }
}
