"""The device-code flow (RFC 8628) of ``madoguchi auth login``: sign in once, keep the token.

The desk shows a code and an address; the mailbox's owner (or an admin)
opens the address anywhere, enters the code and consents. The refresh token
that comes back is kept by ``TokenSource.keep_refresh_token`` (a 0600 file,
encrypted when a key is configured). Microsoft's side is MSAL's
(``initiate_device_flow``, ``acquire_token_by_device_flow``); any other
provider's is Authlib's session posting to the device endpoint and polling
the token endpoint with the device grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from madoguchi.ticketing.oauth import DEVICE_GRANT, OAuthError, TokenSource, refused


def device_login(source: TokenSource, show: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the device-code flow for ``source`` and keep its refresh token; raise OAuthError."""
    s = source.settings
    if s.flow != "refresh_token":
        raise OAuthError(f"{source.key}: flow is client_credentials: the app signs in by "
                         "itself, there is nothing to authorise here")
    if s.provider == "microsoft":
        refresh_token = _msal_device(source, show)
    else:
        refresh_token = _authlib_device(source, show, sleep)
    if not refresh_token:
        raise OAuthError(f"{source.key}: the provider gave no refresh token (for Microsoft "
                         "ask for offline_access; for Google the device client must be a "
                         "\"TVs and Limited Input devices\" client)")
    source.keep_refresh_token(refresh_token)
    source.invalidate()


def _msal_device(source: TokenSource, show: Callable[[str], None]) -> str | None:
    app = source.msal_app(public=True)
    flow = app.initiate_device_flow(scopes=source.settings.scope_list())
    if "user_code" not in flow:
        raise refused(source.key, str(flow.get("error")), str(flow.get("error_description", "")))
    show(str(flow["message"]))
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise refused(source.key, str(result.get("error")),
                      str(result.get("error_description", "")))
    return result.get("refresh_token")


def _authlib_device(source: TokenSource, show: Callable[[str], None],
                    sleep: Callable[[float], None]) -> str | None:
    from authlib.integrations.base_client.errors import OAuthError as AuthlibError
    from requests import RequestException

    s = source.settings
    endpoint = s.device_endpoint()
    if endpoint is None:
        raise OAuthError(f"{source.key}: set device_url (the device authorization endpoint)")
    session = source.authlib_session()
    try:
        answer = session.post(endpoint, data={"client_id": s.client_id,
                                              "scope": " ".join(s.scope_list())},
                              withhold_token=True)
        flow = answer.json()
    except (RequestException, ValueError) as exc:
        raise OAuthError(f"{source.key}: the device endpoint failed: {exc}") from exc
    if "device_code" not in flow:
        raise refused(source.key, str(flow.get("error")), str(flow.get("error_description", "")))
    address = flow.get("verification_uri") or flow.get("verification_url")
    show(f"Open {address} and enter the code {flow['user_code']}")
    interval = float(flow.get("interval", 5))
    deadline = time.monotonic() + float(flow.get("expires_in", 900))
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            token = session.fetch_token(s.token_endpoint(), grant_type=DEVICE_GRANT,
                                        device_code=flow["device_code"])
        except AuthlibError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5
                continue
            raise refused(source.key, str(exc.error), str(exc.description or "")) from exc
        except RequestException as exc:
            raise OAuthError(f"{source.key}: the token endpoint failed: {exc}") from exc
        refresh_token: str | None = token.get("refresh_token")
        return refresh_token
    raise OAuthError(f"{source.key}: nobody entered the code in time; run the command again")
