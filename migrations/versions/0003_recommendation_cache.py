"""recommendation cache and task history version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tuner_recommendation_cache',
        sa.Column('key', sa.String(length=600), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Text(), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['tuner_teams.id'], ondelete='CASCADE',
                                name=op.f('fk_tuner_recommendation_cache_team_id_tuner_teams')),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_tuner_recommendation_cache')),
    )
    with op.batch_alter_table('tuner_recommendation_cache', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tuner_recommendation_cache_team_id'), ['team_id'],
                              unique=False)
    with op.batch_alter_table('tuner_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history_version', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tuner_tasks', schema=None) as batch_op:
        batch_op.drop_column('history_version')
    with op.batch_alter_table('tuner_recommendation_cache', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tuner_recommendation_cache_team_id'))
    op.drop_table('tuner_recommendation_cache')
