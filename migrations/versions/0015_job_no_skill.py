"""what a model that ignores its inputs scores on the job's validation set (its data split), so
an answer says when its best family does no better than predicting the most common class

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs submitted before this revision have none (null): their answers say nothing of it.
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_skill', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_column('no_skill')
