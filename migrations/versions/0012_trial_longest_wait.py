"""a trial's longest wait for progress, its first epoch counted from the trial's start, and the
hardware it ran on (the GPU's model): what a later job of the task allows on that hardware
before it calls a trial stalled (workers.decisions.Progress)

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
        batch_op.add_column(sa.Column('hardware', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.drop_column('hardware')
        batch_op.drop_column('longest_wait_s')
