"""Keycloak's admin console in a real browser (headless Chromium)."""
