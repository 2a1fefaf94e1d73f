"""Realm "upstream" is an OIDC identity provider of realm "downstream" on the same Keycloak:
downstream checks upstream's ID tokens against upstream's /certs (an identity-provider source of
the public key storage), including after upstream rotates its signing key; and a downstream
realm removed and created again with the same ids downloads upstream's keys afresh."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Optional
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from .server_under_test import INFINISPAN, REQUEST_TIMEOUT_SECONDS, ServerUnderTest

UPSTREAM, DOWNSTREAM, IDP_ALIAS = "upstream", "downstream", "upstream-oidc"
BROKER_CLIENT, APP_CLIENT = "downstream-broker", "downstream-app"
# Never reached: the test takes the code from the redirect.
APP_REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass(frozen=True)
class Brokering:
    server: ServerUnderTest
    username: str
    password: str
    broker_secret: str
    app_secret: str


@pytest.fixture(scope="module")
def brokering(server: ServerUnderTest) -> Brokering:
    broker_secret, app_secret = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    username, password = "bob", "pw-" + secrets.token_urlsafe(12)
    server.create_realm(
        UPSTREAM,
        clients=[
            {
                "clientId": BROKER_CLIENT,
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": broker_secret,
                "standardFlowEnabled": True,
                # Every downstream realm's broker endpoint.
                "redirectUris": [f"{server.keycloak.base_url}/realms/*"],
            }
        ],
        users=[
            {
                "username": username,
                "enabled": True,
                "email": f"{username}@example.org",
                "emailVerified": True,
                "firstName": "Bob",
                "lastName": "Upstream",
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            }
        ],
    )
    brokering = Brokering(server, username, password, broker_secret, app_secret)
    certs = f"{upstream_url(server)}/protocol/openid-connect/certs"
    create_downstream(brokering, DOWNSTREAM, certs)
    return brokering


def upstream_url(server: ServerUnderTest) -> str:
    return server.keycloak.realm_url(UPSTREAM)


def create_downstream(
    brokering: Brokering,
    name: str,
    jwks_url: str,
    realm_id: Optional[str] = None,
    idp_internal_id: Optional[str] = None,
) -> None:
    """A realm with the app client and upstream as its OIDC identity provider, whose ID tokens
    it checks against `jwks_url`."""
    upstream = upstream_url(brokering.server)
    identity_provider = {
        "alias": IDP_ALIAS,
        "providerId": "oidc",
        "enabled": True,
        "trustEmail": True,
        "updateProfileFirstLoginMode": "off",
        "config": {
            "issuer": upstream,
            "authorizationUrl": f"{upstream}/protocol/openid-connect/auth",
            "tokenUrl": f"{upstream}/protocol/openid-connect/token",
            "userInfoUrl": f"{upstream}/protocol/openid-connect/userinfo",
            "clientId": BROKER_CLIENT,
            "clientSecret": brokering.broker_secret,
            "clientAuthMethod": "client_secret_post",
            "defaultScope": "openid profile email",
            "validateSignature": "true",
            "useJwksUrl": "true",
            "jwksUrl": jwks_url,
            "syncMode": "IMPORT",
        },
    }
    if idp_internal_id:
        identity_provider["internalId"] = idp_internal_id
    settings = {"id": realm_id} if realm_id else {}
    brokering.server.create_realm(
        name,
        clients=[
            {
                "clientId": APP_CLIENT,
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": brokering.app_secret,
                "standardFlowEnabled": True,
                "redirectUris": [APP_REDIRECT_URI],
            }
        ],
        identityProviders=[identity_provider],
        **settings,
    )


class _Forms(HTMLParser):
    """The forms of a page: action and input values (enough for Keycloak's login page)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][1][values["name"]] = values.get("value", "")


def _send_secure_cookies_over_http(browser: requests.Session) -> None:
    """Keycloak marks its cookies Secure; browsers send those to http://127.0.0.1 (a secure
    context), requests does not unless told."""
    for cookie in browser.cookies:
        cookie.secure = False


def _follow(browser: requests.Session, response: requests.Response) -> requests.Response:
    """Follows redirects until a page, or until the app's redirect URI (not requested)."""
    for _ in range(20):
        _send_secure_cookies_over_http(browser)
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(APP_REDIRECT_URI):
            return response
        response = browser.get(location, allow_redirects=False, timeout=REQUEST_TIMEOUT_SECONDS)
    raise AssertionError(f"more than 20 redirects, the last to {response.url}")


def _page_summary(response: requests.Response) -> str:
    return f"{response.status_code} {response.url}\n{response.text[:1500]}"


def brokered_login(brokering: Brokering, downstream: str = DOWNSTREAM) -> dict[str, str]:
    """Downstream's authorization endpoint with kc_idp_hint → upstream's login form → back to
    downstream (which checks upstream's ID token) → code → downstream's tokens."""
    keycloak = brokering.server.keycloak
    downstream_url = keycloak.realm_url(downstream)
    with requests.Session() as browser:
        state = secrets.token_urlsafe(12)
        page = _follow(
            browser,
            browser.get(
                f"{downstream_url}/protocol/openid-connect/auth",
                params={
                    "client_id": APP_CLIENT,
                    "redirect_uri": APP_REDIRECT_URI,
                    "response_type": "code",
                    "scope": "openid",
                    "state": state,
                    "kc_idp_hint": IDP_ALIAS,
                },
                allow_redirects=False,
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        assert page.status_code == 200 and page.url.startswith(keycloak.realm_url(UPSTREAM)), (
            f"expected upstream's login page, got {_page_summary(page)}"
        )
        forms = _Forms()
        forms.feed(page.text)
        login_forms = [form for form in forms.forms if "username" in form[1]]
        assert login_forms, f"no login form on upstream's page: {_page_summary(page)}"
        action, fields = login_forms[0]
        fields.update(username=brokering.username, password=brokering.password)
        answer = _follow(
            browser,
            browser.post(
                urljoin(page.url, action),
                data=fields,
                allow_redirects=False,
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        location = answer.headers.get("Location", "")
        assert answer.status_code in (302, 303) and location.startswith(APP_REDIRECT_URI), (
            f"the brokered login did not come back to the app: {_page_summary(answer)}"
        )
        query = parse_qs(urlsplit(location).query)
        assert query.get("state") == [state], location
        assert "code" in query, f"no code in {location}"

    tokens = requests.post(
        keycloak.token_url(downstream),
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": APP_REDIRECT_URI,
            "client_id": APP_CLIENT,
            "client_secret": brokering.app_secret,
        },
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    assert tokens.status_code == 200, f"code exchange: {tokens.status_code} {tokens.text[:500]}"
    return tokens.json()


def _active_rsa_kids(server: ServerUnderTest) -> set[str]:
    keys = server.admin.keys(UPSTREAM)["keys"]
    return {
        key["kid"]
        for key in keys
        if key.get("algorithm") == "RS256" and key.get("status") == "ACTIVE"
    }


def test_a_brokered_login_checks_upstream_tokens_and_follows_upstream_key_rotation(
    brokering: Brokering,
) -> None:
    server = brokering.server
    tokens = brokered_login(brokering)
    assert tokens.get("access_token"), tokens
    first_login_done = time.monotonic()
    old_kids = _active_rsa_kids(server)

    # Upstream rotates: a new generated RSA key with a higher priority signs from now on,
    # the old one is made passive (still published, no longer used to sign).
    server.admin.checked(
        "POST",
        f"/{UPSTREAM}/components",
        201,
        json={
            "name": "rsa-rotated",
            "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider",
            "config": {"priority": ["500"], "algorithm": ["RS256"], "keySize": ["2048"]},
        },
    )
    for component in server.admin.key_providers(UPSTREAM):
        if component["providerId"] == "rsa-generated" and component["name"] != "rsa-rotated":
            component["config"]["active"] = ["false"]
            server.admin.checked(
                "PUT", f"/{UPSTREAM}/components/{component['id']}", 204, json=component
            )
    new_kids = _active_rsa_kids(server)
    assert new_kids and not new_kids & old_kids, (old_kids, new_kids)

    # Downstream downloaded upstream's keys during the first login; its window must be over.
    remaining = first_login_done + server.window_with_margin - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    tokens = brokered_login(brokering)
    assert tokens.get("access_token"), tokens


def test_a_realm_created_again_with_the_same_ids_does_not_inherit_the_removed_realms_idp_keys(
    brokering: Brokering,
) -> None:
    server = brokering.server
    if server.provider == INFINISPAN:
        pytest.skip(
            "Keycloak's infinispan provider keeps a removed realm's identity provider keys "
            "(realm removal deletes identity providers without events; entries age out after "
            "max idle); evicting the realm's entries is one of the native provider's additions"
        )
    # Upstream's keys, served where downloads can be counted.
    endpoint = server.jwks_endpoint("upstream-copy")
    endpoint.serve_keys(server.keycloak.certs(UPSTREAM))
    name, realm_id, idp_internal_id = "downstream-again", str(uuid.uuid4()), str(uuid.uuid4())

    create_downstream(brokering, name, endpoint.url, realm_id, idp_internal_id)
    assert _idp_internal_id(server, name) == idp_internal_id
    brokered_login(brokering, name)
    assert endpoint.requests == 1

    server.admin.checked("DELETE", f"/{name}", 204)
    create_downstream(brokering, name, endpoint.url, realm_id, idp_internal_id)
    assert _idp_internal_id(server, name) == idp_internal_id

    # Same realm id, identity provider id and kid: only a fresh download shows the old entry
    # went with the realm.
    brokered_login(brokering, name)
    assert endpoint.requests == 2, "the removed realm's cached identity provider keys were used"


def _idp_internal_id(server: ServerUnderTest, realm: str) -> str:
    return server.admin.checked(
        "GET", f"/{realm}/identity-provider/instances/{IDP_ALIAS}", 200
    ).json()["internalId"]
