"""The admin API: teams, users, keys and the audit log over REST, for the CLI and portal."""
