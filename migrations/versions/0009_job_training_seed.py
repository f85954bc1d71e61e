"""a job's training.seed is part of its training budget: it draws the data split, so runs under
another seed are measured on another validation set

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('training_seed', sa.Integer(), nullable=False,
                                      server_default='0'))
    # Existing jobs: their seed is in their spec (default 0).
    jobs = sa.table('tuner_jobs', sa.column('id', sa.String), sa.column('spec', sa.JSON),
                    sa.column('training_seed', sa.Integer))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        seed = int(((spec or {}).get('training') or {}).get('seed') or 0)
        if seed:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(training_seed=seed))


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_column('training_seed')
