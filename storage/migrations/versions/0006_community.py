"""the community's own contacts: phone, office hours, office address (what residents ask the account)

Revision ID: 0006_community
Revises: 0005_console
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_community'
down_revision = '0005_console'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('communities') as batch:
        batch.add_column(sa.Column('phone', sa.String(length=40), nullable=False, server_default=''))
        batch.add_column(sa.Column('office_hours', sa.String(length=100), nullable=False, server_default=''))
        batch.add_column(sa.Column('office_address', sa.String(length=200), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('communities') as batch:
        batch.drop_column('office_address')
        batch.drop_column('office_hours')
        batch.drop_column('phone')
