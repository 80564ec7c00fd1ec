"""Make a freshly initialised Tryton database ready to receive NewStore's documents.

    python setup_db.py CONF DATABASE --stores US-NYC-01 US-BOS-02 [--products 100234-M ...]

Runs Tryton in this process through proteus (no server needed): a company with its currency;
the administrator allowed to force an assignment (stock NewStore sold may be short in
Tryton); the party coded NEWSTORE, with an address, that receipts come from and sales and
returns go to; for each store a warehouse coded with its location id (a copy of Tryton's
demo warehouse, with input, output and storage locations) and a `<store>/damaged` storage
location below its storage; and, for a demo, goods coded with the given product ids. Used by
the tests (tests/tryton) and by the `tryton` profile of docker-compose.yml.
"""

from __future__ import annotations

import argparse

from proteus import Model, config
from trytond.modules.company.tests.tools import create_company


def main(conf: str, database: str, stores: list[str], products: list[str]) -> None:
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

    if products:
        Unit = Model.get("product.uom")
        Template = Model.get("product.template")
        (unit,) = Unit.find([("symbol", "=", "u")])
        for code in products:
            goods = Template(name=code, code=code, type="goods", default_uom=unit)
            goods.save()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("conf")
    parser.add_argument("database")
    parser.add_argument("--stores", nargs="+", required=True)
    parser.add_argument("--products", nargs="*", default=[])
    args = parser.parse_args()
    main(args.conf, args.database, args.stores, args.products)
