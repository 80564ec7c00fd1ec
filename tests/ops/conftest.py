"""The fake ERP of the delivery tests, to make dead messages for retry."""

from tests.erp_sync.conftest import erp  # noqa: F401 (a fixture)
