"""a task on the team's own data (a file or folder) or hf: model folder is identified by the
digests of their bytes too, and a task on the team's plugins by the digest of their code: the
same file name with other contents, or the same plugin with other code, is another task

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing tasks keep no digest (NULL): what their files held when their trials ran is not
    # known. Their fingerprints do not hold one either, so the next job on such a file makes a
    # new task (with the digest) rather than pooling its trials with runs on unknown contents.
    with op.batch_alter_table('tuner_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('model_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('code_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Not in batch mode: on SQLite that copies the table, and dropping the old copy of a table
    # that jobs refer to fails its foreign keys; SQLite (3.35+) drops a column in place.
    op.drop_column('tuner_tasks', 'code_digest')
    op.drop_column('tuner_tasks', 'model_digest')
    op.drop_column('tuner_tasks', 'data_digest')
