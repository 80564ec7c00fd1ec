"""The real app under uvicorn, on a free port of 127.0.0.1, in a background thread.

For tests that need what the in-process TestClient cannot give: several real connections
hitting the service at the same instant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings


@contextmanager
def live_server(settings: Settings, *, start_timeout: float = 30.0) -> Iterator[str]:
    """Serve `create_app(settings)` until the block exits; yields the base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # Signal handlers belong to the main thread; uvicorn skips them in any other.
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the live server stopped during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the live server did not start in time")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
