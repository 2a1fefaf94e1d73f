#!/usr/bin/env python3
"""Prints the tokens of a Keycloak token response and proves that KMS signed them.

Reads the token endpoint's JSON response on stdin, fetches the key's public key with KMS
GetPublicKey (boto3; credentials from the usual AWS environment variables), and verifies every
JWS in the response that is not HMAC-signed, by hand and with PyJWT. Optionally checks that the
realm's JWKS publishes the same key under the same kid. Exits 1 if anything does not verify.

    curl -s -d grant_type=password ... $REALM_URL/protocol/openid-connect/token |
        python verify_token.py --kms-url http://127.0.0.1:4566 --key-id alias/keycloak-demo \
            --jwks-url $REALM_URL/protocol/openid-connect/certs
"""

from __future__ import annotations

import argparse
import json
import sys

import boto3
import requests
from botocore.config import Config

import kms_jws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kms-url", required=True, help="KMS endpoint URL")
    parser.add_argument("--key-id", required=True, help="KMS key id, ARN or alias")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--jwks-url", help="the realm's .../protocol/openid-connect/certs")
    args = parser.parse_args()

    response = json.load(sys.stdin)
    if "access_token" not in response:
        print(f"no access_token in the token response: {response}", file=sys.stderr)
        return 1

    kms = boto3.client(
        "kms",
        endpoint_url=args.kms_url,
        region_name=args.region,
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
    )
    public = kms.get_public_key(KeyId=args.key_id)
    spki, key_arn = public["PublicKey"], public["KeyId"]
    kms_key = kms_jws.load_spki(spki)
    kid = kms_jws.kid_of_spki(spki)

    access = kms_jws.Jws.parse(response["access_token"])
    print("Access token header:")
    print(json.dumps(access.header, indent=2))
    print("Access token claims:")
    print(json.dumps(access.claims, indent=2))
    print()
    print(f"KMS key:    {key_arn} ({public['KeySpec']})")
    print(f"kid:        {kid}  (base64url of SHA-256 over the SPKI from GetPublicKey)")

    failures = 0
    for name in ("access_token", "id_token"):
        if name not in response:
            continue
        jws = kms_jws.Jws.parse(response[name])
        alg = jws.header.get("alg", "")
        try:
            if jws.header.get("kid") != kid:
                raise ValueError(f"kid {jws.header.get('kid')} is not the KMS key's kid {kid}")
            kms_jws.verify_token(response[name], kms_key, alg)
        except Exception as error:  # report every failure, then exit 1
            failures += 1
            print(f"{name + ':':<14}{alg} signature NOT verified: {error}")
            continue
        print(f"{name + ':':<14}{alg}, signature verified against KMS key {key_arn}")

    if args.jwks_url:
        jwks = requests.get(args.jwks_url, timeout=30).json()
        published = [jwk for jwk in jwks.get("keys", []) if jwk.get("kid") == kid]
        if len(published) == 1 and kms_jws.spki_der(kms_jws.key_from_jwk(published[0])) == spki:
            print(f"{'JWKS:':<14}the realm publishes this KMS public key as kid {kid}")
        else:
            failures += 1
            print(f"{'JWKS:':<14}kid {kid} with the KMS public key is NOT in {args.jwks_url}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
