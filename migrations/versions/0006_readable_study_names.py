"""readable study names: `<team>/<model>/<dataset>/job-<id>` needs more than 64 characters
(Optuna's own limit is 512)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.alter_column('study_name', existing_type=sa.String(length=64),
                              type_=sa.String(length=512), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('tuner_jobs', schema=None) as batch_op:
        batch_op.alter_column('study_name', existing_type=sa.String(length=512),
                              type_=sa.String(length=64), existing_nullable=False)
