"""The admin API: teams, users, keys, budgets and the audit log over REST, used by the CLI and portal."""
