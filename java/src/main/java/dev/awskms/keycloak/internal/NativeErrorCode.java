package dev.awskms.keycloak.internal;

import java.util.Arrays;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * The stable error codes the native library throws (docs/design.md, "Error codes"). The constant
 * names are the wire strings; a test checks both directions against {@link Native#errorCodes()}.
 */
public enum NativeErrorCode {
    /** Bad input from Java: malformed JSON, unknown JCA algorithm, null. */
    INVALID_ARGUMENT,
    /** A configuration field is missing or ill-formed. */
    INVALID_CONFIGURATION,
    /** No AWS credentials could be resolved. */
    CREDENTIALS_UNAVAILABLE,
    /** KMS refused the identity or its permissions. */
    ACCESS_DENIED,
    /** KMS does not know the key or alias. */
    KEY_NOT_FOUND,
    /** The key is disabled. */
    KEY_DISABLED,
    /** The key cannot be used in its state (pending deletion, pending import, ...). */
    KEY_INVALID_STATE,
    /** The key is not a SIGN_VERIFY key. */
    KEY_USAGE_MISMATCH,
    /** The algorithm does not fit the key spec. */
    KEY_SPEC_MISMATCH,
    /** Any other client error from KMS. */
    KMS_REJECTED,
    /** KMS throttled the request (retryable). */
    THROTTLED,
    /** KMS answered with a server error (retryable). */
    KMS_UNAVAILABLE,
    /** A connect, attempt or overall deadline passed (retryable). */
    TIMEOUT,
    /** The connection failed or broke (retryable). */
    NETWORK,
    /** KMS returned a signature that does not verify against the stored public key. */
    INVALID_SIGNATURE,
    /** The uploaded certificate does not parse or is not valid now. */
    INVALID_CERTIFICATE,
    /** The uploaded certificate belongs to another key than the KMS key. */
    CERTIFICATE_MISMATCH,
    /** The signing-key handle is unknown to the native registry. */
    INVALID_HANDLE,
    /** A public key source failed to load and no usable keys are cached for it. */
    PUBLIC_KEYS_UNAVAILABLE,
    /** A JWKS download failed: non-2xx status, refused redirect, response too large, TLS failure. */
    JWKS_FETCH_FAILED,
    /** A downloaded document is not a JWKS. */
    JWKS_INVALID,
    /** The operator's server policy ({@code --spi-keys--aws-kms--…}) does not allow the configuration. */
    POLICY_DENIED,
    /** A bug in the native library. */
    INTERNAL,
    /** A Rust panic caught at the JNI boundary. */
    PANIC;

    private static final Map<String, NativeErrorCode> BY_WIRE_NAME =
            Arrays.stream(values()).collect(Collectors.toUnmodifiableMap(Enum::name, Function.identity()));

    /**
     * Maps a wire code to its constant. An unknown code (a newer native library than this Java
     * code) must not turn an error report into a crash, so it maps to {@link #INTERNAL}; the
     * caller keeps the wire string for the message.
     */
    public static NativeErrorCode fromWire(String wireCode) {
        NativeErrorCode code = wireCode == null ? null : BY_WIRE_NAME.get(wireCode);
        return code == null ? INTERNAL : code;
    }
}
