#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into seeds/<target>/ (committed).

Realistic inputs made with `cryptography`; the keys' private halves exist only while this runs,
so a re-run makes new keys and rewrites every seed (the targets' two KMS keys are
seeds/spki_der/rsa-2048.der and ec-p256.der; the certificates and signatures match them).

    ~/.cache/keycloak-aws-kms/venv/bin/python rust/fuzz/make_seeds.py
"""
import base64
import datetime
import hashlib
import json
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.x509.oid import NameOID

SEEDS = Path(__file__).resolve().parent / "seeds"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
STATUS = {200: 0, 400: 1, 403: 2, 404: 3, 500: 7, 503: 9}


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64(data):
    return base64.b64encode(data).decode()


def certificate(private_key, subject="fuzz", days=(-150, 1500), issuer_key=None, algorithm=hashes.SHA256()):
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer = issuer_key or private_key
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        algorithm = None
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start + datetime.timedelta(days=days[0] + 150))
        .not_valid_after(start + datetime.timedelta(days=days[1]))
        .sign(signer, algorithm)
    )


def main():
    # The two KMS keys the targets hold fixed (fuzz_support::kms_keys).
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    others = {
        "rsa-3072.der": rsa.generate_private_key(public_exponent=65537, key_size=3072),
        "rsa-1024.der": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "ec-p384.der": ec.generate_private_key(ec.SECP384R1()),
        "ec-p521.der": ec.generate_private_key(ec.SECP521R1()),
        "ec-secp256k1.der": ec.generate_private_key(ec.SECP256K1()),
        "ed25519.der": ed25519.Ed25519PrivateKey.generate(),
    }
    write("spki_der", "rsa-2048.der", spki(rsa_key.public_key()))
    write("spki_der", "ec-p256.der", spki(ec_key.public_key()))
    for name, key in others.items():
        write("spki_der", name, spki(key.public_key()))
    write("spki_der", "truncated.der", spki(rsa_key.public_key())[:100])
    write("spki_der", "trailing-bytes.der", spki(ec_key.public_key()) + b"\x00")

    # certificate_pem: [mode][key] + certificate; key 0 = the RSA KMS key, 1 = the EC one.
    rsa_cert = certificate(rsa_key)
    ec_cert = certificate(ec_key, algorithm=hashes.SHA384())
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    der = lambda c: c.public_bytes(serialization.Encoding.DER)
    write("certificate_pem", "rsa-pem", b"\x00\x00" + pem(rsa_cert))
    write("certificate_pem", "ec-pem", b"\x00\x01" + pem(ec_cert))
    write("certificate_pem", "ec-der", b"\x01\x01" + der(ec_cert))
    write("certificate_pem", "rsa-der", b"\x01\x00" + der(rsa_cert))
    write("certificate_pem", "mismatch-p384", b"\x00\x01" + pem(certificate(others["ec-p384.der"], algorithm=hashes.SHA384())))
    write("certificate_pem", "mismatch-ed25519", b"\x00\x00" + pem(certificate(others["ed25519.der"])))
    write("certificate_pem", "expired", b"\x00\x00" + pem(certificate(rsa_key, days=(-3000, -1000))))
    write("certificate_pem", "not-yet-valid", b"\x00\x01" + pem(certificate(ec_key, days=(2000, 3000))))
    write("certificate_pem", "chain", b"\x00\x00" + pem(rsa_cert) + pem(certificate(others["rsa-3072.der"])))
    write("certificate_pem", "text-around", b"\x00\x01" + b"Subject: CN=fuzz\r\n" + pem(ec_cert) + b"\ntrailing\n")
    write("certificate_pem", "private-key-label", b"\x00\x00-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    write("certificate_pem", "public-key-block", b"\x00\x00" + rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    # JWKS documents.
    def rsa_jwk(key, **extra):
        n = key.public_key().public_numbers()
        return {"kty": "RSA", "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64url(n.e.to_bytes(3, "big")), **extra}

    def ec_jwk(key, crv, size, **extra):
        n = key.public_key().public_numbers()
        return {"kty": "EC", "crv": crv, "x": b64url(n.x.to_bytes(size, "big")), "y": b64url(n.y.to_bytes(size, "big")), **extra}

    ed = ed25519.Ed25519PrivateKey.generate()
    xk = x25519.X25519PrivateKey.generate()
    raw = lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    docs = {
        "keycloak-realm.json": {"keys": [
            rsa_jwk(rsa_key, kid="rsa-sig", use="sig", alg="RS256", x5c=[b64(der(rsa_cert))],
                    **{"x5t": b64url(hashlib.sha1(der(rsa_cert)).digest()), "x5t#S256": b64url(hashlib.sha256(der(rsa_cert)).digest())}),
            rsa_jwk(others["rsa-3072.der"], kid="rsa-enc", use="enc", alg="RSA-OAEP"),
            ec_jwk(ec_key, "P-256", 32, kid="ec-sig", use="sig", alg="ES256", x5c=[b64(der(ec_cert))]),
        ]},
        "curves.json": {"keys": [
            ec_jwk(others["ec-p384.der"], "P-384", 48, kid="p384"),
            ec_jwk(others["ec-p521.der"], "P-521", 66, kid="p521"),
            {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw(ed)), "kid": "ed"},
            {"kty": "OKP", "crv": "X25519", "x": b64url(raw(xk)), "kid": "x", "use": "enc"},
        ]},
        "odd-members.json": {"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            rsa_jwk(rsa_key, kid="has-d", d="AQAB"),
            rsa_jwk(others["rsa-1024.der"], kid="small"),
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": 7},
            ec_jwk(ec_key, "P-384", 32, kid="wrong-curve"),
            rsa_jwk(rsa_key, kid="cert-of-other-key", x5c=[b64(der(ec_cert))]),
            rsa_jwk(rsa_key, kid="bad-x5c", x5c=["not base64!"]),
            "not an object",
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kid": "no-kty"},
        ]},
        "empty.json": {"keys": []},
    }
    for name, doc in docs.items():
        write("jwks_document", name, json.dumps(doc, indent=1))
    write("jwks_document", "no-keys.json", '{"issuer":"https://example.org"}')
    write("jwks_document", "keys-not-array.json", '{"keys":{"kty":"RSA"}}')
    write("jwks_document", "truncated.json", json.dumps(docs["keycloak-realm.json"])[:300])
    write("jwks_document", "html.html", "<html><body>502 Bad Gateway</body></html>")

    # jwk_members: [name length][name][value length u16 BE][value] records; n/e/x/y raw bytes.
    def records(*pairs):
        out = b""
        for name, value in pairs:
            value = value if isinstance(value, bytes) else value.encode()
            out += bytes([len(name)]) + name.encode() + struct.pack(">H", len(value)) + value
        return out

    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    write("jwk_members", "rsa", records(("kty", "RSA"), ("n", rn.n.to_bytes(256, "big")), ("e", rn.e.to_bytes(3, "big")), ("kid", "k1"), ("use", "sig"), ("alg", "RS256")))
    write("jwk_members", "rsa-x5c", records(("kty", "RSA"), ("n", rn.n.to_bytes(256, "big")), ("e", b"\x01\x00\x01"), ("x5c", der(rsa_cert))))
    write("jwk_members", "ec-p256-x5c", records(("kty", "EC"), ("crv", "P-256"), ("x", en.x.to_bytes(32, "big")), ("y", en.y.to_bytes(32, "big")), ("x5c", der(ec_cert)), ("x5c", der(rsa_cert))))
    write("jwk_members", "okp", records(("kty", "OKP"), ("crv", "Ed25519"), ("x", raw(ed))))
    write("jwk_members", "leading-zero-n", records(("kty", "RSA"), ("n", b"\x00" + rn.n.to_bytes(256, "big")), ("e", b"\x00\x01\x00\x01")))
    write("jwk_members", "bad-encoding", records(("kty", "RSA"), ("~n", "+/+/=="), ("~e", "AQAB"), ("~x5c", "%%%")))
    write("jwk_members", "json-members", records(("kty", "EC"), ("crv", "P-521"), ("key_ops", '["verify"]'), ("use", "null"), ("kid", "[1,2]")))

    # kms_answers: [status index][flags] + body; flags: bit0 x-amzn-ErrorType line, bits 2-3 op
    # (0 DescribeKey, 1 GetPublicKey, 2 Sign EC, 3 Sign RSA), bit 4 RS256 configured.
    def answer(status, flags, body):
        body = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        return bytes([STATUS[status], flags]) + body

    def metadata(spec, algorithms, **extra):
        return {"KeyMetadata": {"AWSAccountId": "111122223333", "Arn": KEY_ARN, "CreationDate": 1.7e9, "Enabled": True,
                                "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "KeyManager": "CUSTOMER", "KeySpec": spec,
                                "KeyState": "Enabled", "KeyUsage": "SIGN_VERIFY", "Origin": "AWS_KMS",
                                "SigningAlgorithms": algorithms, **extra}}

    write("kms_answers", "describe-ec", answer(200, 0, metadata("ECC_NIST_P256", ["ECDSA_SHA_256"])))
    write("kms_answers", "describe-rsa", answer(200, 16, metadata("RSA_2048", ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"])))
    write("kms_answers", "describe-disabled", answer(200, 0, metadata("ECC_NIST_P256", ["ECDSA_SHA_256"], KeyState="Disabled", Enabled=False)))
    write("kms_answers", "describe-encrypt", answer(200, 16, metadata("RSA_2048", [], KeyUsage="ENCRYPT_DECRYPT", EncryptionAlgorithms=["RSAES_OAEP_SHA_256"])))
    write("kms_answers", "describe-no-arn", answer(200, 0, {"KeyMetadata": {"KeyId": "x"}}))
    write("kms_answers", "public-key-ec", answer(200, 4, {"KeyId": KEY_ARN, "PublicKey": b64(spki(ec_key.public_key())), "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256"]}))
    write("kms_answers", "public-key-rsa", answer(200, 4, {"KeyId": KEY_ARN, "PublicKey": b64(spki(rsa_key.public_key())), "KeySpec": "RSA_2048"}))
    signature = ec_key.sign(b"fuzz", ec.ECDSA(hashes.SHA256()))
    write("kms_answers", "sign-ec", answer(200, 8, {"KeyId": KEY_ARN, "Signature": b64(signature), "SigningAlgorithm": "ECDSA_SHA_256"}))
    signature = rsa_key.sign(b"fuzz", padding.PKCS1v15(), hashes.SHA256())
    write("kms_answers", "sign-rsa", answer(200, 12, {"KeyId": KEY_ARN, "Signature": b64(signature), "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}))
    other = others["ec-p384.der"].sign(b"fuzz", ec.ECDSA(hashes.SHA256()))
    write("kms_answers", "sign-wrong-key", answer(200, 8, {"KeyId": KEY_ARN, "Signature": b64(other), "SigningAlgorithm": "ECDSA_SHA_256"}))
    write("kms_answers", "not-found", answer(400, 0, {"__type": "NotFoundException", "message": "Invalid keyId alias/fuzz"}))
    write("kms_answers", "access-denied", answer(400, 8, {"__type": "AccessDeniedException", "Message": "User: arn:aws:sts::111122223333:assumed-role/r/s is not authorized to perform: kms:Sign on resource: " + KEY_ARN}))
    write("kms_answers", "wrong-region", answer(400, 4, {"__type": "com.amazonaws.kms#NotFoundException", "message": "Invalid arn eu-west-1"}))
    write("kms_answers", "throttled", answer(400, 8, {"__type": "ThrottlingException", "message": "Rate exceeded"}))
    write("kms_answers", "internal", answer(500, 12, {"__type": "KMSInternalException"}))
    write("kms_answers", "unavailable-html", answer(503, 3, "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.coral.availability/\n<html>down</html>"))
    write("kms_answers", "error-type-header", answer(400, 1, "UnrecognizedClientException:\n{}"))
    write("kms_answers", "empty-200", answer(200, 0, ""))
    write("kms_answers", "not-json", answer(200, 6, "<xml/>"))

    # sts_answers: [status index][flags] + the AssumeRole answer (XML).
    ns = 'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"'
    ok = (f'<AssumeRoleResponse {ns}><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROA:keycloak-aws-kms</AssumedRoleId>'
          '<Arn>arn:aws:sts::111122223333:assumed-role/fuzz/keycloak-aws-kms</Arn></AssumedRoleUser><Credentials>'
          '<AccessKeyId>ASIAFUZZFUZZFUZZFUZZ</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>'
          '<SessionToken>FwoGZXIvYXdzEFUZZ</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>'
          '</AssumeRoleResult><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>')
    write("sts_answers", "assumed", bytes([0, 0]) + ok.encode())
    write("sts_answers", "expired", bytes([0, 0]) + ok.replace("2099", "2001").encode())
    for name, status, code in [("access-denied", 403, "AccessDenied"), ("throttling", 400, "Throttling"),
                               ("internal", 500, "InternalFailure"), ("unavailable", 503, "ServiceUnavailable")]:
        kind = "Receiver" if status >= 500 else "Sender"
        body = (f'<ErrorResponse {ns}><Error><Type>{kind}</Type><Code>{code}</Code><Message>User: arn:aws:iam::111122223333:user/u '
                f'is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/fuzz</Message></Error>'
                '<RequestId>e0a8-11e0</RequestId></ErrorResponse>')
        write("sts_answers", name, bytes([STATUS[status], 0]) + body.encode())
    write("sts_answers", "html", bytes([STATUS[503], 2]) + b"<html>503</html>")

    # signing_config_json: what Java sends to describeSigningKey and signingKeyHandle.
    public_key = b64(spki(ec_key.public_key()))
    configs = {
        "describe-default.json": {"kmsKeyId": "alias/signing", "region": "eu-west-1", "credentialsMode": "default",
                                  "algorithm": "ES256", "realm": "tenant-a", "certificateSubject": "tenant-a",
                                  "keysInOtherRealms": [KEY_ARN], "keptSecrets": [], "previous": None},
        "describe-access-key.json": {"kmsKeyId": KEY_ARN, "credentialsMode": "access-key", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                                     "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "endpointUrl": "http://127.0.0.1:4566",
                                     "algorithm": "RS256", "certificate": pem(rsa_cert).decode(), "realm": "master",
                                     "previous": {"kmsKeyId": KEY_ARN, "region": "eu-west-1", "endpointUrl": "http://127.0.0.1:4566"},
                                     "keptSecrets": ["secretAccessKey"]},
        "describe-assume-role.json": {"kmsKeyId": "arn:aws:kms:us-gov-west-1:111122223333:alias/signing", "credentialsMode": "assume-role",
                                      "roleArn": "arn:aws:iam::111122223333:role/signer", "externalId": "ext-123",
                                      "roleSessionName": "keycloak-aws-kms", "stsEndpointUrl": "https://sts.us-gov-west-1.amazonaws.com",
                                      "algorithm": "PS512", "realm": "r"},
        "handle.json": {"kmsKeyId": "alias/signing", "region": "eu-west-1", "algorithm": "ES256", "keyArn": KEY_ARN,
                        "keySpec": "ECC_NIST_P256", "publicKey": public_key, "kid": b64url(hashlib.sha256(spki(ec_key.public_key())).digest()),
                        "realm": "tenant-a"},
        "handle-stale.json": {"kmsKeyId": "alias/signing", "region": "eu-west-1", "keyArn": KEY_ARN, "keySpec": "RSA_2048", "publicKey": public_key},
        "not-strings.json": {"kmsKeyId": 5, "region": ["eu-west-1"], "realm": {"name": "x"}},
    }
    for name, config in configs.items():
        write("signing_config_json", name, json.dumps(config))
    write("signing_config_json", "vault.json", '{"kmsKeyId":"mrk-1234abcd12ab34cd56ef1234567890ab","region":"us-east-1","credentialsMode":"access-key","accessKeyId":"AKIAIOSFODNN7EXAMPLE","secretAccessKey":"${vault.aws-secret}"}')

    # signing_policy_json: the operator's aws-kms options.
    policies = {
        "all.json": {"allowedCredentialsModes": "default,assume-role", "ambientIdentityRealms": "master",
                     "allowedKeyIds": "arn:aws:kms:eu-west-1:111122223333:key/*,alias/$${realm}-*",
                     "allowedRoleArns": "arn:aws:iam::111122223333:role/keycloak-$${realm}",
                     "allowedEndpointHosts": "kms.eu-west-1.amazonaws.com,*.vpce.amazonaws.com,127.0.0.1",
                     "keySharedAcrossRealms": "false", "insecureHttpHosts": "127.0.0.1,localhost"},
        "boolean.json": {"keySharedAcrossRealms": True},
        "empty.json": {},
        "unknown.json": {"allowedKeyId": "x"},
        "bad-mode.json": {"allowedCredentialsModes": "root"},
        "globs.json": {"allowedKeyIds": "**,?,[a-z],$${realm},${realm},$$$${realm}*"},
    }
    for name, policy in policies.items():
        write("signing_policy_json", name, json.dumps(policy))

    # public_key_cache_options_json: the native-lru options.
    options = {
        "defaults.json": {"minTimeBetweenRequests": 10, "maxEntries": 10000, "maxIdle": 3600, "maxAge": 86400,
                          "staleOnErrorLimit": 86400, "fetchConnectTimeout": 2000, "fetchTimeout": 5000,
                          "maxResponseSize": 1048576, "denyPrivateNetworks": False, "deniedAddresses": "",
                          "minRsaKeySize": 2048, "trustedCertificates": []},
        "truststore.json": {"trustedCertificates": [b64(der(rsa_cert)), b64(der(ec_cert))], "denyPrivateNetworks": True,
                            "deniedAddresses": "169.254.169.254/32,fd00:ec2::254/128,10.0.0.0/8,::ffff:0:0/96"},
        "limits.json": {"maxEntries": 0, "fetchTimeout": -1, "maxResponseSize": 9223372036854775807},
        "bad-cert.json": {"trustedCertificates": ["not base64", b64(b"\x30\x03\x02\x01\x01")]},
        "unknown.json": {"maxEntriez": 1},
    }
    for name, value in options.items():
        write("public_key_cache_options_json", name, json.dumps(value))


if __name__ == "__main__":
    main()
