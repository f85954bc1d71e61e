"""the precision a job's spec asks for (fp32, bf16) is part of its training budget: a run under
bf16 autocast is not a repeat of one in fp32

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('precision', sa.String(length=8), nullable=False,
                                      server_default='fp32'))
    # Existing jobs: their precision is in their spec (default fp32).
    jobs = sa.table('tuner_jobs', sa.column('id', sa.String), sa.column('spec', sa.JSON),
                    sa.column('precision', sa.String))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        precision = ((spec or {}).get('training') or {}).get('precision') or 'fp32'
        if precision != 'fp32':
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                precision=str(precision)))


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_column('precision')
