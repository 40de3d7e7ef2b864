"""the review queue: rows a model answered unsurely, for a person to label; golden cases may come from a review

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('item_key', sa.Text(), nullable=False),
    sa.Column('feature_id', sa.DateTime(timezone=False), nullable=False),
    sa.Column('series', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('interval_low', sa.Float(), nullable=True),
    sa.Column('interval_high', sa.Float(), nullable=True),
    sa.Column('probabilities', postgresql.JSONB(), nullable=True),
    sa.Column('actual', sa.Text(), nullable=True),
    sa.Column('queued_on', sa.Date(), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('labelled_by', sa.String(length=200), nullable=True),
    sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('golden_case_key', sa.String(length=64), nullable=True),
    sa.CheckConstraint("origin IN ('served', 'nowtest')", name='ck_review_origin'),
    sa.CheckConstraint("(label IS NULL) = (labelled_by IS NULL) AND (label IS NULL) = (labelled_at IS NULL)",
                       name='ck_review_labelled_together'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'item_key', name='uq_review_item_key')
    )
    op.create_index('ix_review_model_day', 'review_items', ['model_id', 'queued_on'])
    op.drop_constraint('ck_golden_source', 'golden_cases', type_='check')
    op.create_check_constraint('ck_golden_source', 'golden_cases', "source IN ('file', 'harvested', 'reviewed')")


def downgrade() -> None:
    op.execute("DELETE FROM golden_cases WHERE source = 'reviewed'")
    op.drop_constraint('ck_golden_source', 'golden_cases', type_='check')
    op.create_check_constraint('ck_golden_source', 'golden_cases', "source IN ('file', 'harvested')")
    op.drop_index('ix_review_model_day', table_name='review_items')
    op.drop_table('review_items')
