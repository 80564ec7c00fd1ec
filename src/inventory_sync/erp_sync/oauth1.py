"""OAuth 1.0a request signing (RFC 5849) with HMAC-SHA256, as NetSuite's token-based
authentication wants it: the `Authorization: OAuth realm="<account>", ...` header.

Pure: the timestamp and nonce are arguments, so a signature is reproducible in tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    realm: str
    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str


def encode(value: str) -> str:
    """RFC 5849 3.6: every byte but ALPHA, DIGIT, '-', '.', '_', '~' percent-encoded."""
    return urllib.parse.quote(value, safe="~")


def base_string_uri(url: str) -> str:
    """RFC 5849 3.4.1.2: scheme and host in lower case, a default port left out, no query."""
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def authorization(
    method: str, url: str, credentials: Credentials, *, timestamp: int, nonce: str
) -> str:
    """The `Authorization` header for one request. A JSON body is not signed (RFC 5849
    3.4.1.3.1 signs only form-encoded bodies); the query's parameters are."""
    oauth = {
        "oauth_consumer_key": credentials.consumer_key,
        "oauth_token": credentials.token,
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": str(timestamp),
        "oauth_nonce": nonce,
        "oauth_version": "1.0",
    }
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    pairs = sorted((encode(k), encode(v)) for k, v in [*oauth.items(), *query])
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), encode(base_string_uri(url)), encode(normalized)))
    key = f"{encode(credentials.consumer_secret)}&{encode(credentials.token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    oauth["oauth_signature"] = base64.b64encode(digest).decode()
    fields = [f'realm="{encode(credentials.realm)}"']
    fields += [f'{name}="{encode(value)}"' for name, value in oauth.items()]
    return "OAuth " + ", ".join(fields)


def realm(account_id: str) -> str:
    """NetSuite's realm for an account id: upper case, a sandbox's `-` as `_` (1234567_SB1)."""
    return account_id.upper().replace("-", "_")
