"""the web face: console login links and sessions, Open311 clients, web secrets; indexes for the console's
ticket list and the monthly report

Revision ID: 0005_console
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_console"
down_revision = "0004_wishes"
branch_labels = None
depends_on = None

_TICKET_INDEXES = {
    "ix_tickets_created_at": ["created_at"],
    "ix_tickets_status_created_at": ["status", "created_at"],
    "ix_tickets_grid_id_created_at": ["grid_id", "created_at"],
    "ix_tickets_category_created_at": ["category", "created_at"],
    "ix_tickets_dispatched_at": ["dispatched_at"],
}


def upgrade() -> None:
    op.create_table(
        "console_links",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_links")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_openid"), "console_sessions", ["openid"])
    op.create_table(
        "open311_clients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open311_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_open311_clients_name")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_open311_clients_key_hash")),
    )
    op.create_table(
        "web_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_web_secrets")),
    )
    for name, columns in _TICKET_INDEXES.items():
        op.create_index(name, "tickets", columns)


def downgrade() -> None:
    for name in _TICKET_INDEXES:
        op.drop_index(name, table_name="tickets")
    op.drop_table("web_secrets")
    op.drop_table("open311_clients")
    op.drop_index(op.f("ix_console_sessions_openid"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_links")
