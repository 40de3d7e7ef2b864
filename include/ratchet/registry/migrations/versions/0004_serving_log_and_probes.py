"""the REST service's prediction log and health probes; requirements may have scope 'serving'; evaluations of
kind 'served' (served predictions against actuals) and 'serving' (the service's level, owned by no version)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:50:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('served_predictions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('route', sa.String(length=10), nullable=False),
    sa.Column('arm', sa.String(length=20), nullable=False),
    sa.Column('feature_id', sa.DateTime(timezone=False), nullable=True),
    sa.Column('prediction', sa.Float(), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('probabilities', postgresql.JSONB(), nullable=True),
    sa.Column('cache_hit', sa.Boolean(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('replica', sa.String(length=200), nullable=False),
    sa.Column('served_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("route IN ('id', 'rows')", name='ck_served_route'),
    sa.CheckConstraint("arm IN ('champion', 'candidate')", name='ck_served_arm'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_served_model_time', 'served_predictions', ['model_id', 'served_at'])
    op.create_index('ix_served_model_feature', 'served_predictions', ['model_id', 'feature_id'])
    op.create_table('serving_probes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('replica', sa.String(length=200), nullable=False),
    sa.Column('healthy', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('probed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_serving_probes_probed_at'), 'serving_probes', ['probed_at'])
    op.drop_constraint('ck_req_scope', 'requirements', type_='check')
    op.create_check_constraint('ck_req_scope', 'requirements', "scope IN ('backtest', 'nowtest', 'gate', 'serving')")
    op.drop_constraint('ck_eval_kind', 'evaluations', type_='check')
    op.create_check_constraint('ck_eval_kind', 'evaluations',
                               "kind IN ('backtest', 'nowtest', 'regression', 'gate', 'served', 'serving')")
    op.drop_constraint('ck_eval_version_xor_baseline', 'evaluations', type_='check')
    op.create_check_constraint('ck_eval_version_xor_baseline', 'evaluations',
                               "kind = 'serving' AND version_id IS NULL AND baseline IS NULL "
                               "OR kind <> 'serving' AND (version_id IS NOT NULL) <> (baseline IS NOT NULL)")


def downgrade() -> None:
    op.execute("DELETE FROM evaluations WHERE kind IN ('served', 'serving')")
    op.drop_constraint('ck_eval_version_xor_baseline', 'evaluations', type_='check')
    op.create_check_constraint('ck_eval_version_xor_baseline', 'evaluations',
                               "(version_id IS NOT NULL) <> (baseline IS NOT NULL)")
    op.drop_constraint('ck_eval_kind', 'evaluations', type_='check')
    op.create_check_constraint('ck_eval_kind', 'evaluations', "kind IN ('backtest', 'nowtest', 'regression', 'gate')")
    op.execute("DELETE FROM requirements WHERE scope = 'serving'")
    op.drop_constraint('ck_req_scope', 'requirements', type_='check')
    op.create_check_constraint('ck_req_scope', 'requirements', "scope IN ('backtest', 'nowtest', 'gate')")
    op.drop_index(op.f('ix_serving_probes_probed_at'), table_name='serving_probes')
    op.drop_table('serving_probes')
    op.drop_index('ix_served_model_feature', table_name='served_predictions')
    op.drop_index('ix_served_model_time', table_name='served_predictions')
    op.drop_table('served_predictions')
