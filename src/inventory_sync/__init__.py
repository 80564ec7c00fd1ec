"""newstore-inventory-sync: NewStore inventory events in, ledger and ERP documents out."""

__version__ = "0.2.0"
