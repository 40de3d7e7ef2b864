"""back-test predictions per day; calibrated requirement bounds and their derivation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:10:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backtest_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('contender', sa.String(length=100), nullable=False),
    sa.Column('partition', sa.String(length=50), nullable=False),
    sa.Column('days', postgresql.ARRAY(sa.Date()), nullable=False),
    sa.Column('actual', postgresql.ARRAY(sa.Float()), nullable=True),
    sa.Column('predicted', postgresql.ARRAY(sa.Float()), nullable=True),
    sa.Column('loss', postgresql.ARRAY(sa.Float()), nullable=True),
    sa.Column('correct', postgresql.ARRAY(sa.Boolean()), nullable=True),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'contender', 'partition', name='uq_backtest_day_month')
    )
    op.add_column('requirements', sa.Column('calibrate', sa.Float(), nullable=True))
    op.add_column('requirement_history', sa.Column('derivation', postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column('requirement_history', 'derivation')
    op.drop_column('requirements', 'calibrate')
    op.drop_table('backtest_days')
