"""early stopping patience is part of a job's training budget: a run stopped after `patience`
epochs without improvement is not a repeat of one trained for all its epochs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('early_stopping_patience', sa.Integer(), nullable=True))
    # Existing jobs: their patience is in their spec (default none).
    jobs = sa.table('tuner_jobs', sa.column('id', sa.String), sa.column('spec', sa.JSON),
                    sa.column('early_stopping_patience', sa.Integer))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        patience = ((spec or {}).get('training') or {}).get('early_stopping_patience')
        if patience is not None:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                early_stopping_patience=int(patience)))


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_column('early_stopping_patience')
