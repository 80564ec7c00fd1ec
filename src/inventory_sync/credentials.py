"""Generated credentials for a set-up that configured none.

The service never accepts unauthenticated events. When `INVSYNC_WEBHOOK_KEYS` (or both token
variables) are empty, the first start generates a secret, prints it once, and keeps only its
SHA-256, so later starts accept the same secret without showing it again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Column, String, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from inventory_sync.db import UTCDateTime, metadata, utcnow

generated_credential = Table(
    "generated_credential",
    metadata,
    # webhook_key | admin_token
    Column("kind", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

WEBHOOK_KEY = "webhook_key"
ADMIN_TOKEN = "admin_token"
_PREFIX = {WEBHOOK_KEY: "whk_", ADMIN_TOKEN: "adm_"}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(presented: str, digests: list[str]) -> bool:
    """Constant-time check of a presented secret against known digests (all are compared)."""
    candidate = digest(presented)
    found = False
    for known in digests:
        found |= hmac.compare_digest(candidate, known)
    return found


@dataclass(frozen=True)
class Generated:
    kind: str
    secret: str | None  # the plaintext, only in the process that created it
    sha256: str


def ensure(conn: Connection, kind: str) -> Generated:
    """Return the generated credential of `kind`, creating it if none exists yet.

    Several processes may start at once: the insert is conflict-free and the winner alone
    learns the plaintext.
    """
    secret = _PREFIX[kind] + secrets.token_urlsafe(24)
    values = {"kind": kind, "secret_sha256": digest(secret), "created_at": utcnow()}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    created = conn.execute(
        dialect_insert(generated_credential).values(values).on_conflict_do_nothing()
    ).rowcount
    stored = conn.execute(
        select(generated_credential.c.secret_sha256).where(generated_credential.c.kind == kind)
    ).scalar_one()
    return Generated(kind, secret if created == 1 else None, stored)
