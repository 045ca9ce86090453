"""Report indexes on the usage ledger: time, and team, user and key each with time.

Every report filters on a time window, team and key views add their holder, developer views
their user; the single-column key and team indexes are prefixes of the new ones and go.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_usage_records_time", "usage_records", ["time"])
    op.create_index("ix_usage_records_team_id_time", "usage_records", ["team_id", "time"])
    op.create_index("ix_usage_records_user_id_time", "usage_records", ["user_id", "time"])
    op.create_index("ix_usage_records_key_id_time", "usage_records", ["key_id", "time"])
    op.drop_index("ix_usage_records_key_id", "usage_records")
    op.drop_index("ix_usage_records_team_id", "usage_records")


def downgrade() -> None:
    op.create_index("ix_usage_records_team_id", "usage_records", ["team_id"])
    op.create_index("ix_usage_records_key_id", "usage_records", ["key_id"])
    op.drop_index("ix_usage_records_key_id_time", "usage_records")
    op.drop_index("ix_usage_records_user_id_time", "usage_records")
    op.drop_index("ix_usage_records_team_id_time", "usage_records")
    op.drop_index("ix_usage_records_time", "usage_records")
