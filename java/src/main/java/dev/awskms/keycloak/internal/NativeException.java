package dev.awskms.keycloak.internal;

/**
 * The one exception the native library throws. Rust constructs it through JNI as
 * {@code dev/awskms/keycloak/internal/NativeException} with the signature
 * {@code (Ljava/lang/String;ZLjava/lang/String;)V}; do not move the class or change the constructor.
 *
 * <p>Messages are written by the native side for administrators and never carry secrets or key
 * material. {@link #getMessage()} prefixes the wire code so that logs always show it.
 */
public final class NativeException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final String wireCode;
    private final NativeErrorCode code;
    private final boolean retryable;
    private final String detail;

    /**
     * @param code      the wire error code (see {@link NativeErrorCode}); an unknown code maps to
     *                  {@link NativeErrorCode#INTERNAL} and is kept verbatim in the message
     * @param retryable whether a later identical call may succeed
     * @param message   the native side's description of the failure
     */
    public NativeException(String code, boolean retryable, String message) {
        super(String.valueOf(code) + ": " + String.valueOf(message));
        this.wireCode = String.valueOf(code);
        this.code = NativeErrorCode.fromWire(code);
        this.retryable = retryable;
        this.detail = String.valueOf(message);
    }

    /** The error code; {@link NativeErrorCode#INTERNAL} for a code this Java code does not know. */
    public NativeErrorCode code() {
        return code;
    }

    /** The code exactly as the native library sent it. */
    public String wireCode() {
        return wireCode;
    }

    /** Whether a later identical call may succeed (throttling, outages, timeouts). */
    public boolean retryable() {
        return retryable;
    }

    /** The native message without the code prefix. */
    public String detail() {
        return detail;
    }
}
