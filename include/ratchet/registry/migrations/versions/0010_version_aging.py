"""version aging: how a champion's back-test metric grows with the months since it was trained, and the age at
which it first breaks a requirement (`evaluation.aging`)

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03 12:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('version_aging',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('months', postgresql.JSONB(), nullable=False),
    sa.Column('max_age', sa.Integer(), nullable=False),
    sa.Column('curves', postgresql.JSONB(), nullable=False),
    sa.Column('crossings', postgresql.JSONB(), nullable=False),
    sa.Column('crossing_age', sa.Integer(), nullable=True),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'version_id', name='uq_version_aging')
    )


def downgrade() -> None:
    op.drop_table('version_aging')
