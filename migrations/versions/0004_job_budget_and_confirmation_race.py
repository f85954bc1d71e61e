"""job training budget (epochs, batch size) and the confirmation race's reserve and outcome

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epochs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('batch_size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('confirm_budget', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('confirm_note', sa.Text(), nullable=True))
    # Existing jobs: their budget is in their spec (defaults 10 epochs, batch size 64).
    jobs = sa.table('tuner_jobs', sa.column('id', sa.String), sa.column('spec', sa.JSON),
                    sa.column('epochs', sa.Integer), sa.column('batch_size', sa.Integer))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        training = (spec or {}).get('training') or {}
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(
            epochs=int(training.get('epochs', 10)), batch_size=int(training.get('batch_size', 64))))
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_tuner_jobs_task_budget', ['task_id', 'epochs', 'batch_size'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_tuner_jobs_task_budget')
        batch_op.drop_column('confirm_note')
        batch_op.drop_column('confirm_budget')
        batch_op.drop_column('batch_size')
        batch_op.drop_column('epochs')
