"""End-to-end tests of two Keycloak nodes in a cluster on PostgreSQL (issue 12)."""
