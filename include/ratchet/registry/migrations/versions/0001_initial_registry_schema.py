"""initial registry schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 23:59:23.397539
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=20), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('spec', postgresql.JSONB(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("task IN ('regression', 'classification')", name='ck_models_task'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('recipients', postgresql.JSONB(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'sending', 'sent')", name='ck_alert_status'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_table('backtest_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('summary', postgresql.JSONB(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'run_id', name='uq_report_run')
    )
    op.create_table('golden_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('case_key', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('inputs', postgresql.JSONB(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=False),
    sa.Column('tolerance', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("source IN ('file', 'harvested')", name='ck_golden_source'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'case_key', name='uq_golden_case')
    )
    op.create_table('requirements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=50), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('bound', sa.Float(), nullable=False),
    sa.Column('relative_to', sa.String(length=100), nullable=True),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("direction IN ('max', 'min')", name='ck_req_direction'),
    sa.CheckConstraint("scope IN ('backtest', 'nowtest', 'gate')", name='ck_req_scope'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'metric', 'relative_to', 'scope', 'direction', name='uq_requirement_key')
    )
    op.create_table('search_trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('trial_index', sa.Integer(), nullable=False),
    sa.Column('estimator_class', sa.String(length=300), nullable=False),
    sa.Column('params', postgresql.JSONB(), nullable=False),
    sa.Column('sampling', sa.String(length=20), nullable=False),
    sa.Column('metric', sa.String(length=50), nullable=False),
    sa.Column('fold_scores', postgresql.JSONB(), nullable=False),
    sa.Column('mean_score', sa.Float(), nullable=True),
    sa.Column('fit_seconds', sa.Float(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'run_id', 'trial_index', name='uq_trial_run_index')
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('estimator_class', sa.String(length=300), nullable=False),
    sa.Column('hyperparameters', postgresql.JSONB(), nullable=False),
    sa.Column('artifact', sa.LargeBinary(), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_format', sa.String(length=50), nullable=False),
    sa.Column('train_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('train_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dataset_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('features', postgresql.JSONB(), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('package_versions', postgresql.JSONB(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('fit_seconds', sa.Float(), nullable=False),
    sa.Column('predict_latency_p95_ms', sa.Float(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('cv_metric', sa.String(length=50), nullable=True),
    sa.Column('cv_score', sa.Float(), nullable=True),
    sa.Column('trial_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('trial_started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trial_id'], ['search_trials.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'run_id', 'trial_id', name='uq_version_run_trial'),
    sa.UniqueConstraint('model_id', 'version', name='uq_version_number')
    )
    op.create_table('aliases',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=50), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('model_id', 'alias')
    )
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('contender', sa.String(length=100), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('baseline', sa.String(length=100), nullable=True),
    sa.Column('partition', sa.String(length=50), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('metric', sa.String(length=50), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('details', postgresql.JSONB(), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('backtest', 'nowtest', 'regression', 'gate')", name='ck_eval_kind'),
    sa.CheckConstraint('(version_id IS NOT NULL) <> (baseline IS NOT NULL)', name='ck_eval_version_xor_baseline'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'kind', 'contender', 'partition', 'metric', name='uq_evaluation_key')
    )
    op.create_table('promotions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('previous_version_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('triggered_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('gates', postgresql.JSONB(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('initial', 'promotion', 'rollback')", name='ck_promotion_kind'),
    sa.CheckConstraint("outcome IN ('promoted', 'rejected', 'dry_run')", name='ck_promotion_outcome'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['previous_version_id'], ['model_versions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('requirement_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('requirement_id', sa.Integer(), nullable=False),
    sa.Column('old_bound', sa.Float(), nullable=True),
    sa.Column('new_bound', sa.Float(), nullable=True),
    sa.Column('change', sa.String(length=20), nullable=False),
    sa.Column('changed_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('promotion_id', sa.Integer(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['promotion_id'], ['promotions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['requirement_id'], ['requirements.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('requirement_history')
    op.drop_table('promotions')
    op.drop_table('evaluations')
    op.drop_table('aliases')
    op.drop_table('model_versions')
    op.drop_table('search_trials')
    op.drop_table('requirements')
    op.drop_table('golden_cases')
    op.drop_table('backtest_reports')
    op.drop_table('alerts')
    op.drop_table('models')
