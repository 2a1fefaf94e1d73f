"""End-to-end tests of the public key storage (issue 4), against both providers."""
