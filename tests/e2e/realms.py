"""Realm and component representations for the admin REST API (`POST /admin/realms`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from harness import KEY_PROVIDER_TYPE, REGION, Emulator

AWS_KMS_PROVIDER_ID = "aws-kms"
KMS_PROVIDER_PRIORITY = 200


@dataclass(frozen=True)
class Login:
    """The confidential client and the user every test realm has."""

    client_id: str
    client_secret: str
    username: str
    password: str


def aws_kms_component(
    name: str,
    alg: str,
    kms_key_id: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    region: Optional[str] = REGION,
    priority: int = KMS_PROVIDER_PRIORITY,
    active: bool = True,
    extra: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """An `aws-kms` key provider component with access-key credentials (config keys:
    docs/design.md)."""
    return kms_component(
        name,
        alg,
        kms_key_id,
        endpoint_url,
        access_key_credentials(access_key_id, secret_access_key),
        region=region,
        priority=priority,
        active=active,
        extra=extra,
    )


def kms_component(
    name: str,
    alg: str,
    kms_key_id: str,
    endpoint_url: str,
    credentials: dict[str, str],
    *,
    region: Optional[str] = REGION,
    priority: int = KMS_PROVIDER_PRIORITY,
    active: bool = True,
    enabled: bool = True,
    extra: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """An `aws-kms` component with any credentials mode: `credentials` is one of
    `access_key_credentials`, `default_credentials` or `assume_role_credentials`."""
    config = {
        "kmsKeyId": kms_key_id,
        "endpointUrl": endpoint_url,
        **credentials,
        "algorithm": alg,
        "priority": str(priority),
        "enabled": "true" if enabled else "false",
        "active": "true" if active else "false",
    }
    if region is not None:
        config["region"] = region
    config.update(extra or {})
    return {
        "name": name,
        "providerId": AWS_KMS_PROVIDER_ID,
        "providerType": KEY_PROVIDER_TYPE,
        "config": {key: [value] for key, value in config.items()},
    }


def access_key_credentials(access_key_id: str, secret_access_key: str) -> dict[str, str]:
    return {
        "credentialsMode": "access-key",
        "accessKeyId": access_key_id,
        "secretAccessKey": secret_access_key,
    }


def default_credentials() -> dict[str, str]:
    """The Keycloak server's own AWS credential chain: nothing stored in the component."""
    return {"credentialsMode": "default"}


def assume_role_credentials(
    role_arn: str,
    sts_endpoint_url: str,
    *,
    external_id: Optional[str] = None,
    access_key_id: Optional[str] = None,
    secret_access_key: Optional[str] = None,
    role_session_name: Optional[str] = None,
) -> dict[str, str]:
    """assume-role: as the given access key, or as the server's default chain without one."""
    config = {
        "credentialsMode": "assume-role",
        "roleArn": role_arn,
        "stsEndpointUrl": sts_endpoint_url,
    }
    optional = {
        "externalId": external_id,
        "accessKeyId": access_key_id,
        "secretAccessKey": secret_access_key,
        "roleSessionName": role_session_name,
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    return config


def with_config(component: dict[str, Any], **changes: Optional[str]) -> dict[str, Any]:
    """A copy of a component representation with config values replaced (None removes one)."""
    config = {key: list(values) for key, values in component["config"].items()}
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = [value]
    return {**component, "config": config}


def client_with_algorithms(
    login: Login, access_token_alg: Optional[str] = None, id_token_alg: Optional[str] = None
) -> dict[str, Any]:
    """The confidential client, signing its access and ID tokens with per-client algorithms."""
    client = confidential_client(login)
    attributes: dict[str, str] = {}
    if access_token_alg:
        attributes["access.token.signed.response.alg"] = access_token_alg
    if id_token_alg:
        attributes["id.token.signed.response.alg"] = id_token_alg
    client["attributes"] = attributes
    return client


def emulator_component(name: str, alg: str, kms_key_id: str, emulator: Emulator) -> dict[str, Any]:
    return aws_kms_component(
        name,
        alg,
        kms_key_id,
        emulator.kms_url,
        emulator.access_key_id,
        emulator.secret_access_key,
    )


def _generated_symmetric_keys() -> list[dict[str, Any]]:
    # Listing any key provider suppresses Keycloak's defaults, so name the symmetric ones.
    return [
        {
            "name": "hmac-generated",
            "providerId": "hmac-generated",
            "config": {"priority": ["100"], "algorithm": ["HS512"]},
        },
        {"name": "aes-generated", "providerId": "aes-generated", "config": {"priority": ["100"]}},
    ]


def confidential_client(login: Login, mappers: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    return {
        "clientId": login.client_id,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": False,
        "clientAuthenticatorType": "client-secret",
        "secret": login.client_secret,
        "directAccessGrantsEnabled": True,
        "standardFlowEnabled": False,
        "serviceAccountsEnabled": False,
        # Keycloak only introspects tokens for clients in their audience.
        "protocolMappers": [self_audience_mapper(login.client_id), *(mappers or [])],
    }


def self_audience_mapper(client_id: str) -> dict[str, Any]:
    return {
        "name": "self-audience",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {
            "included.client.audience": client_id,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
        },
    }


def hardcoded_claim_mapper(claim: str, value: str) -> dict[str, Any]:
    return {
        "name": f"hardcoded-{claim}",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-hardcoded-claim-mapper",
        "config": {
            "claim.name": claim,
            "claim.value": value,
            "jsonType.label": "String",
            "access.token.claim": "true",
            "id.token.claim": "true",
            "userinfo.token.claim": "false",
            "introspection.token.claim": "true",
        },
    }


def realm(
    name: str,
    alg: str,
    login: Login,
    key_providers: Optional[list[dict[str, Any]]] = None,
) -> dict[str, Any]:
    """A realm signing with `alg` by default, with one client and one user.

    `key_providers=None` leaves Keycloak's generated keys in place.
    """
    representation: dict[str, Any] = {
        "realm": name,
        "enabled": True,
        "defaultSignatureAlgorithm": alg,
        "clients": [confidential_client(login)],
        "users": [
            {
                "username": login.username,
                "enabled": True,
                "email": f"{login.username}@example.org",
                "emailVerified": True,
                "firstName": login.username.capitalize(),
                "lastName": "Tester",
                "credentials": [
                    {"type": "password", "value": login.password, "temporary": False}
                ],
            }
        ],
    }
    if key_providers is not None:
        representation["components"] = {
            KEY_PROVIDER_TYPE: [
                {key: value for key, value in provider.items() if key != "providerType"}
                for provider in key_providers
            ]
            + _generated_symmetric_keys()
        }
    return representation
