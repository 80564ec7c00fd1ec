"""All tables, registered on one `MetaData` for Alembic and the tests."""

from inventory_sync import credentials
from inventory_sync.db import metadata
from inventory_sync.erp_sync import models as erp_models
from inventory_sync.ledger import models as ledger_models
from inventory_sync.webhooks import models as webhook_models

__all__ = ["credentials", "erp_models", "ledger_models", "metadata", "webhook_models"]
