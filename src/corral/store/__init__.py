"""The Store port and its adapters: keys, teams, usage ledger and audit log."""

from corral.store.bootstrap import BootstrapKey, bootstrap_admin_key
from corral.store.keysync import KeySync
from corral.store.memory import InMemoryStore
from corral.store.port import Store
from corral.store.records import (
    Actor,
    ApiKey,
    AuditEntry,
    AuditQuery,
    KeyMaterial,
    KeySpec,
    Team,
    User,
)
from corral.store.secret import check_server_secret, load_server_secret

__all__ = [
    "Actor",
    "ApiKey",
    "AuditEntry",
    "AuditQuery",
    "BootstrapKey",
    "InMemoryStore",
    "KeyMaterial",
    "KeySpec",
    "KeySync",
    "Store",
    "Team",
    "User",
    "bootstrap_admin_key",
    "check_server_secret",
    "load_server_secret",
]
