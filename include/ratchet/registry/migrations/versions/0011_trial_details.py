"""a search trial's details: the complexity of its model and its paired test against the best trial of its run, what
the simplicity choice (`modeling.simplicity`) reads back when a re-run reuses the recorded trials

Older trials have none (NULL): a re-run of their run registers the best by score, as they were.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('search_trials', sa.Column('details', postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column('search_trials', 'details')
