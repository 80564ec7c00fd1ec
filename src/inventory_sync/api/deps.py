"""What routes receive from the app: the store, its database, the rules. Built once per app by
`create_app()`; routes declare what they need instead of reaching into `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from inventory_sync.intake.classify import Rules
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import Store


def store(request: Request) -> Store:
    found: Store = request.app.state.store
    return found


def database(request: Request) -> Database:
    found: Database = request.app.state.store.database
    return found


def rules(request: Request) -> Rules:
    found: Rules = request.app.state.rules
    return found


StoreDep = Annotated[Store, Depends(store)]
DatabaseDep = Annotated[Database, Depends(database)]
RulesDep = Annotated[Rules, Depends(rules)]
