"""promotion proposals: the 'proposed' outcome and the comment of the person who answered one

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('promotions', sa.Column('comment', sa.Text(), nullable=True))
    op.drop_constraint('ck_promotion_outcome', 'promotions', type_='check')
    op.create_check_constraint('ck_promotion_outcome', 'promotions',
                               "outcome IN ('promoted', 'rejected', 'dry_run', 'proposed')")


def downgrade() -> None:
    op.execute("DELETE FROM promotions WHERE outcome = 'proposed'")
    op.drop_constraint('ck_promotion_outcome', 'promotions', type_='check')
    op.create_check_constraint('ck_promotion_outcome', 'promotions', "outcome IN ('promoted', 'rejected', 'dry_run')")
    op.drop_column('promotions', 'comment')
