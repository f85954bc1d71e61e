"""dispatchers as they last said of themselves (running, stopped, crashed), so that a queued job
says whether anything will run it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 23:59:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tuner_dispatchers',
        sa.Column('owner', sa.String(length=100), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('owner', name=op.f('pk_tuner_dispatchers')))
    with op.batch_alter_table('tuner_dispatchers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tuner_dispatchers_seen_at'), ['seen_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tuner_dispatchers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tuner_dispatchers_seen_at'))
    op.drop_table('tuner_dispatchers')
