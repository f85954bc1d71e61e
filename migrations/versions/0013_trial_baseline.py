"""a trial that is a run of the job's baseline (search.baseline: AdamW at its defaults with
cosine), so the trials table, its exports and the API say which runs the answer's baseline
comparison rests on

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 22:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials recorded before this revision were never marked: false (the answer finds the
    # baseline's runs by their configuration, not by this mark).
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('baseline', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.drop_column('baseline')
