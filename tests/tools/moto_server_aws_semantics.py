"""Runs moto's server with its KMS signing corrected to AWS's documented semantics.

moto (5.x) deviates from AWS exactly where the product lives:
  - it ignores MessageType=DIGEST and hashes the digest again;
  - it signs RSASSA-PSS with the maximum salt length, where AWS uses the hash length;
  - it lets disabled and pending-deletion keys sign.
The product must not be tuned to those bugs, so the test harness corrects them here and keeps
moto as an independent second KMS implementation. The patches touch moto internals; moto is
pinned in tests/requirements.txt, and `check_moto_version` refuses any other version.

Usage: python moto_server_aws_semantics.py [moto_server arguments...]
"""

from __future__ import annotations

import sys
import threading

import moto
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.core.exceptions import JsonRESTError
from moto.kms import models, responses, utils
from moto.kms.exceptions import ValidationException

PATCHED_MOTO_VERSION = "5.2.5"

# The request's MessageType, for the key's sign() below (moto does not pass it down).
_request = threading.local()


def check_moto_version() -> None:
    if moto.__version__ != PATCHED_MOTO_VERSION:
        raise SystemExit(
            f"moto {moto.__version__} is installed; these corrections were written for "
            f"{PATCHED_MOTO_VERSION}. Review them before changing the pin."
        )


def _is_digest() -> bool:
    return getattr(_request, "message_type", "RAW") == "DIGEST"


def _check_digest_length(message: bytes, hash_algorithm) -> None:
    if _is_digest() and len(message) != hash_algorithm.digest_size:
        raise ValidationException(
            f"Digest is invalid length for algorithm {hash_algorithm.name}."
        )


def _hash_argument(hash_algorithm):
    return Prehashed(hash_algorithm) if _is_digest() else hash_algorithm


def _rsa_sign(self, message: bytes, signing_algorithm: str) -> bytes:
    utils.validate_signing_algorithm(
        signing_algorithm, utils.SigningAlgorithm.rsa_signing_algorithms()
    )
    pad, hash_algorithm = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
    if isinstance(pad, padding.PSS):
        pad = padding.PSS(
            mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.DIGEST_LENGTH
        )
    _check_digest_length(message, hash_algorithm)
    return self.private_key.sign(message, pad, _hash_argument(hash_algorithm))


def _ecdsa_sign(self, message: bytes, signing_algorithm: str) -> bytes:
    utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    hash_algorithm = self._ECDSAPrivateKey__hash_algorithm(signing_algorithm)
    _check_digest_length(message, hash_algorithm)
    return self.private_key.sign(message, ec.ECDSA(_hash_argument(hash_algorithm)))


_original_response_sign = responses.KmsResponse.sign


def _response_sign(self) -> str:
    _request.message_type = self._get_param("MessageType") or "RAW"
    try:
        return _original_response_sign(self)
    finally:
        _request.message_type = "RAW"


class DisabledException(JsonRESTError):
    def __init__(self, message: str) -> None:
        super().__init__("DisabledException", message)


class KMSInvalidStateException(JsonRESTError):
    def __init__(self, message: str) -> None:
        super().__init__("KMSInvalidStateException", message)


_original_backend_sign = models.KmsBackend.sign


def _backend_sign(self, key_id: str, message: bytes, signing_algorithm: str):
    key = self.describe_key(key_id)
    if key.key_state == "Disabled":
        raise DisabledException(f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise KMSInvalidStateException(f"{key.arn} is {key.key_state}.")
    return _original_backend_sign(self, key_id, message, signing_algorithm)


def apply_corrections() -> None:
    utils.RSAPrivateKey.sign = _rsa_sign
    utils.ECDSAPrivateKey.sign = _ecdsa_sign
    responses.KmsResponse.sign = _response_sign
    models.KmsBackend.sign = _backend_sign


if __name__ == "__main__":
    check_moto_version()
    apply_corrections()
    from moto.server import main

    main(sys.argv[1:])
