"""A fresh Tryton database made ready for the tests: `python setup_db.py CONF DB STORE...`.

Runs Tryton in this process through proteus (no server): a company with its currency, the
administrator allowed to force an assignment, the party NewStore documents are booked with,
and one warehouse per store, a copy of Tryton's demo warehouse coded with the store's id, with
a `damaged` storage location below its storage.
"""

from __future__ import annotations

import sys

from proteus import Model, config
from trytond.modules.company.tests.tools import create_company


def main(conf: str, database: str, stores: list[str]) -> None:
    config.set_trytond(database=database, config_file=conf)
    create_company()
    Group = Model.get("res.group")
    User = Model.get("res.user")
    (admin,) = User.find([("login", "=", "admin")])
    (force,) = Group.find([("name", "=", "Stock Force Assignment")])
    admin.groups.append(force)
    admin.save()

    Party = Model.get("party.party")
    party = Party(name="NewStore", code="NEWSTORE")
    party.addresses[0].street = "1 Store Street"
    party.save()

    Location = Model.get("stock.location")
    (template,) = Location.find([("code", "=", "WH"), ("type", "=", "warehouse")])
    for store in stores:
        warehouse = template.duplicate(default={"name": store, "code": store})[0]
        damaged = Location(
            name=f"{store} damaged",
            code=f"{store}/damaged",
            type="storage",
            parent=warehouse.storage_location,
        )
        damaged.save()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
