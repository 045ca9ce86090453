"""The Store port and its adapters: keys, teams, usage ledger and audit log."""
