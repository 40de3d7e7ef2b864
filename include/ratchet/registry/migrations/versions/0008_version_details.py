"""a version's details: what fitting decided beyond its hyperparameters (a classifier's decision threshold, and how it
was chosen) and why the search ranked it by its metric

Older versions have none (NULL): they decide by the most probable class.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('model_versions', sa.Column('details', postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column('model_versions', 'details')
