"""End-to-end tests of signing with keys in AWS KMS (the aws-kms key provider)."""
