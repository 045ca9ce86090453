"""The admin API: teams, users, keys and the audit log over REST, for the CLI and portal."""

PREFIX = "/admin/v1"
"""Where the composition root mounts the admin app (build_admin_app in corral.admin.app)."""
