"""the service's training code a job ran (tuner.spec.TRAINING_FORMAT) is part of its training
budget: runs of another release's loop, models or data preparation are not repeats

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every job so far ran training format 1, the first.
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('training_format', sa.Integer(), nullable=False,
                                      server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_column('training_format')
