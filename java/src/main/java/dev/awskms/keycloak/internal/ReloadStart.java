package dev.awskms.keycloak.internal;

/**
 * The native cache's answer to "may I reload this source?": either the keys to use now, or a permit
 * to lead the load. Java-only; built by {@link Native#beginPublicKeyReload}.
 */
public final class ReloadStart {

    private final CachedPublicKeys answer;
    private final long permit;

    ReloadStart(CachedPublicKeys answer, long permit) {
        this.answer = answer;
        this.permit = permit;
    }

    /** Whether this caller must load the keys and then end {@link #permit()}. */
    public boolean leads() {
        return permit != 0;
    }

    /** The permit id to end with complete or fail; 0 when this caller does not lead. */
    public long permit() {
        return permit;
    }

    /**
     * When not leading: the keys to use now, or null (throttled with nothing cached). Always null
     * when leading.
     */
    public CachedPublicKeys answer() {
        return answer;
    }

    @Override
    public String toString() {
        return leads() ? "ReloadStart[leads, permit " + permit + "]" : "ReloadStart[answer " + answer + "]";
    }
}
