"""The console through the real app: signing in as a browser does, reading the CSRF token
from the page; the fake ERP of the delivery tests, to make dead messages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.erp_sync.conftest import erp  # noqa: F401 (a fixture)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html[:500]
    return found.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign `client` in with `token`; returns the session's CSRF token."""
    form = client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.text), "token": token, "next": "/console"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"
    return csrf_of(client.get("/console").text)
