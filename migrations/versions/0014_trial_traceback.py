"""a failed trial's traceback (its innermost frames, paths under their import roots), so a team
reads where its model or loop raised through the API, the CLI and the job page

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials recorded before this revision have none (null): the error's last line is in detail.
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traceback', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.drop_column('traceback')
