"""the hallway: notices about anything (not only tickets)

An outbox row names what it is about ("ticket:10003", "wish:10021" …) and carries the number and the
status word a template message shows, so the sender needs to look nothing up.

Revision ID: 0002_hallway
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_hallway'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('about', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('ref', sa.String(length=16), nullable=False, server_default=''))
        batch.add_column(sa.Column('phrase', sa.String(length=8), nullable=False, server_default=''))
    # Rows written before: about their ticket, number and status as the sender used to read them.
    op.execute("""
        UPDATE outbox SET about = 'ticket:' || CAST(ticket_id AS VARCHAR(20)),
               ref = (SELECT number FROM tickets WHERE tickets.id = outbox.ticket_id)
        WHERE ticket_id IS NOT NULL
    """)


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('phrase')
        batch.drop_column('ref')
        batch.drop_column('about')
