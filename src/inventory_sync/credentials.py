"""Who may call the service: webhook keys, read-only ops tokens and admin tokens.

Secrets are known by their SHA-256 only and compared with `hmac.compare_digest` against every
known digest, so neither timing nor the position of a key in the rotation list leaks anything.

The service never accepts unauthenticated events. When `INVSYNC_WEBHOOK_KEYS` (or both token
variables) are empty, the first start generates a secret, shows it once, and the database keeps
only its SHA-256 (`Store.ensure_credential`), so later starts accept the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from inventory_sync.settings import Settings

WEBHOOK_KEY = "webhook_key"
ADMIN_TOKEN = "admin_token"
# Not a credential anyone presents: a random value whose stored digest signs the console's
# sessions when INVSYNC_CONSOLE_SIGNING_KEY is unset, the same in every process of one database.
CONSOLE_KEY = "console_key"
_PREFIX = {WEBHOOK_KEY: "whk_", ADMIN_TOKEN: "adm_", CONSOLE_KEY: "csk_"}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(presented: str, digests: list[str]) -> bool:
    """Constant-time check of a presented secret against known digests (all are compared)."""
    return _known(digest(presented), digests)


def _known(candidate: str, digests: list[str]) -> bool:
    found = False
    for known in digests:
        found |= hmac.compare_digest(candidate, known)
    return found


def new_secret(kind: str) -> str:
    return _PREFIX[kind] + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Generated:
    """A generated credential: its digest, and its plaintext only in the process that made it."""

    kind: str
    secret: str | None
    sha256: str


@dataclass(frozen=True)
class Keyring:
    """Digests of every secret the service accepts, by role."""

    webhook: list[str]
    read: list[str]
    admin: list[str]

    @classmethod
    def from_settings(
        cls, settings: Settings, generated_webhook: str | None, generated_admin: str | None
    ) -> Keyring:
        def digests(values: list[str]) -> list[str]:
            return [digest(s) for s in values]

        webhook = digests([k.get_secret_value() for k in settings.webhook_keys])
        admin = digests([t.get_secret_value() for t in settings.admin_tokens])
        read = digests([t.get_secret_value() for t in settings.ops_tokens])
        if not webhook and generated_webhook:
            webhook = [generated_webhook]
        if not admin and not read and generated_admin:
            admin = [generated_admin]
        return cls(webhook, read, admin)

    @property
    def complete(self) -> bool:
        return bool(self.webhook) and bool(self.admin or self.read)

    def role(self, token: str) -> str | None:
        """`admin`, `read` or None for a presented ops token."""
        if matches(token, self.admin):
            return "admin"
        if matches(token, self.read):
            return "read"
        return None

    def role_of_digest(self, sha256: str) -> str | None:
        """`admin`, `read` or None for the digest of an ops token (a console session keeps
        the digest of the token it was opened with, never the token)."""
        if _known(sha256, self.admin):
            return "admin"
        if _known(sha256, self.read):
            return "read"
        return None
