"""a version keeps its own feature contract, a snapshot of the YAML it was trained under, the code and Python version

Every existing version gets the contract its model's stored YAML describes today (the YAML it has been predicting
under), with its features resolved from the columns it was trained on, so it keeps working after any later edit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LAG_PREFIX = 'target_lag_'
HELPER_PREFIX = '_baseline_lag_'  # the baselines' helper lag columns, as named when this migration was written


def _contract(source: dict, features: list) -> dict:
    """The contract `specs.model.Source.contract` writes, from a stored YAML's `source` and a version's columns."""
    return {
        'time_column': source['time_column'], 'target': source['target'],
        'features': [c for c in features if not c.startswith((LAG_PREFIX, HELPER_PREFIX))],
        'categorical': list(source.get('categorical') or []),
        'target_lags': sorted(set(source.get('target_lags') or [])),
        'lags_by': source.get('lags_by') or 'days', 'missing_target': source.get('missing_target') or 'drop',
    }


def upgrade() -> None:
    for name in ('contract', 'spec_snapshot'):
        op.add_column('model_versions', sa.Column(name, postgresql.JSONB(), nullable=True))
    op.add_column('model_versions', sa.Column('code_version', sa.String(100), nullable=True))
    op.add_column('model_versions', sa.Column('python_version', sa.String(50), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text('SELECT v.id, v.features, m.spec FROM model_versions v '
                                'JOIN models m ON m.id = v.model_id')).all()
    for version_id, features, spec in rows:
        conn.execute(sa.text('UPDATE model_versions SET contract = :contract, spec_snapshot = :spec WHERE id = :id')
                     .bindparams(sa.bindparam('contract', type_=postgresql.JSONB()),
                                 sa.bindparam('spec', type_=postgresql.JSONB())),
                     {'contract': _contract(spec['source'], features), 'spec': spec, 'id': version_id})
    op.alter_column('model_versions', 'contract', nullable=False)
    op.alter_column('model_versions', 'spec_snapshot', nullable=False)


def downgrade() -> None:
    for name in ('python_version', 'code_version', 'spec_snapshot', 'contract'):
        op.drop_column('model_versions', name)
