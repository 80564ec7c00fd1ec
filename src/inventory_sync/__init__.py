"""newstore-inventory-sync: NewStore inventory events in, ledger and ERP documents out."""

__version__ = "0.1.0"
