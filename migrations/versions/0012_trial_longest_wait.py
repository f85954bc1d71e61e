"""a trial's longest wait for an epoch, its first counted from the trial's start: what a later
job of the task allows before it calls a trial stalled (workers.decisions.Progress)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials recorded before this revision did not measure it: NULL, and never read as a wait.
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('longest_wait_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.drop_column('longest_wait_s')
