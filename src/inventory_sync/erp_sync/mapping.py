"""NewStore ids as the ERP knows them: `INVSYNC_ERP_MAPPING` (PRODUCT.md section 7.1).

An optional JSON or YAML file, `{"locations": {...}, "stock_locations": {...}, "products":
{...}, "party": "..."}`; an id absent from it keeps its own value. Read once, when the adapter
starts: a changed file takes effect at the worker's next start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("locations", "stock_locations", "products")
KEYS = (*SECTIONS, "party")


@dataclass(frozen=True)
class Mapping:
    locations: dict[str, str] = field(default_factory=dict)
    """NewStore location id -> the ERP's code of its warehouse."""
    stock_locations: dict[str, str] = field(default_factory=dict)
    """`<location id>/<stock location>` -> the ERP's code of that location."""
    products: dict[str, str] = field(default_factory=dict)
    """NewStore product id -> the ERP's product code."""
    party: str | None = None
    """The ERP's code of the party goods come from and go to (an ERP adapter's default)."""

    def location(self, location_id: str) -> str:
        return self.locations.get(location_id, location_id)

    def stock_location(self, location_id: str, stock_location: str) -> str:
        key = f"{location_id}/{stock_location}"
        return self.stock_locations.get(key, key)

    def product(self, product_id: str) -> str:
        return self.products.get(product_id, product_id)


def load(path: Path | None) -> Mapping:
    """The mapping in `path` (none: every id as it is), or ValueError naming the variable."""
    if path is None:
        return Mapping()
    try:
        text = path.read_text(encoding="utf-8")
        raw: Any = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"INVSYNC_ERP_MAPPING: cannot read {path}: {reason}") from None
    if raw is None:
        return Mapping()
    if not isinstance(raw, dict) or set(raw) - set(KEYS):
        raise ValueError(
            f"INVSYNC_ERP_MAPPING: expected an object with {', '.join(KEYS)} (each optional)"
        )
    party = raw.get("party")
    if party is not None and not (isinstance(party, str) and party):
        raise ValueError("INVSYNC_ERP_MAPPING: party must be a non-empty string")
    sections: dict[str, dict[str, str]] = {}
    for name in SECTIONS:
        section = raw.get(name)
        if section is None:
            section = {}
        if not isinstance(section, dict) or not all(
            isinstance(v, str) and v for v in section.values()
        ):
            raise ValueError(f"INVSYNC_ERP_MAPPING: {name} must map ids to non-empty strings")
        sections[name] = {str(k): v for k, v in section.items()}
    return Mapping(**sections, party=party)
