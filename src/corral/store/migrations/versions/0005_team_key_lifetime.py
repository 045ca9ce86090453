"""A team's optional maximum key lifetime: no new key of the team may live longer.

Existing keys keep their expiry; the column is empty (no maximum) for every team.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("teams", sa.Column("max_key_lifetime", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("teams", "max_key_lifetime")
