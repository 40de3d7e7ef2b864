"""predictions keyed by time and series: `backtest_days.days` (dates) becomes `times` (timestamps), and back-test
predictions and served ones may name their series

A date per prediction collapsed hourly rows into days (the paired test then kept one row per day) and could not
tell the series of a panel apart. Stored dates become their midnights, which is what they stood for. The service's
prediction log names a panel row's series beside its time key, and the failed split candidate a champion stood in
for.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column('backtest_days', 'days', new_column_name='times')
    op.alter_column('backtest_days', 'times', type_=postgresql.ARRAY(sa.DateTime()),
                    postgresql_using='times::timestamp without time zone[]')
    op.add_column('backtest_days', sa.Column('series', postgresql.ARRAY(sa.Text()), nullable=True))
    op.add_column('served_predictions', sa.Column('series', sa.Text(), nullable=True))
    op.add_column('served_predictions', sa.Column('fallback_from', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('served_predictions', 'fallback_from')
    op.drop_column('served_predictions', 'series')
    op.drop_column('backtest_days', 'series')
    op.alter_column('backtest_days', 'times', type_=postgresql.ARRAY(sa.Date()), postgresql_using='times::date[]')
    op.alter_column('backtest_days', 'times', new_column_name='days')
