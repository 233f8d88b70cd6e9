"""micro-wishes (微心愿) and Party members (在职党员): party_members, wishes, wish_events, wish_claimers, wish_photos

Revision ID: 0004_wishes
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_wishes'
down_revision = '0002_hallway'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('party_members',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('unit', sa.String(length=100), nullable=False),
    sa.Column('skills', sa.String(length=200), nullable=False),
    sa.Column('time_offered', sa.String(length=100), nullable=False),
    sa.Column('registered_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_party_members_community_id_communities')),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_party_members'))
    )
    with op.batch_alter_table('party_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_members_community_id'), ['community_id'], unique=False)

    op.create_table('wishes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('building_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('public_text', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('review_due', sa.DateTime(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('reject_reason', sa.Text(), nullable=False),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.Column('claim_round', sa.Integer(), nullable=False),
    sa.Column('group_claim', sa.Boolean(), nullable=False),
    sa.Column('claimer_count', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('progress_at', sa.DateTime(), nullable=True),
    sa.Column('fulfilled_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('close_reason', sa.String(length=16), nullable=True),
    sa.Column('reminded', sa.Boolean(), nullable=False),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('story', sa.Text(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=True),
    sa.Column('shared_phone', sa.String(length=20), nullable=False),
    sa.Column('phone_shared_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_wishes_building_id_buildings')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_wishes_community_id_communities')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_wishes_household_id_households')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wishes')),
    sa.UniqueConstraint('number', name=op.f('uq_wishes_number'))
    )
    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wishes_openid'), ['openid'], unique=False)
        batch_op.create_index('ix_wishes_status_community', ['status', 'community_id'], unique=False)

    op.create_table('wish_claimers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('lead', sa.Boolean(), nullable=False),
    sa.Column('joined_at', sa.DateTime(), nullable=False),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.Column('minutes', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_wish_claimers_wish_id_wishes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wish_claimers')),
    sa.UniqueConstraint('wish_id', 'round', 'openid', name=op.f('uq_wish_claimers_wish_id_round_openid'))
    )
    with op.batch_alter_table('wish_claimers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wish_claimers_openid'), ['openid'], unique=False)

    op.create_table('wish_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_wish_events_wish_id_wishes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wish_events'))
    )
    with op.batch_alter_table('wish_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wish_events_wish_id'), ['wish_id'], unique=False)

    op.create_table('wish_photos',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('media_id', sa.String(length=200), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_wish_photos_wish_id_wishes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wish_photos'))
    )
    with op.batch_alter_table('wish_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wish_photos_wish_id'), ['wish_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('wish_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wish_photos_wish_id'))

    op.drop_table('wish_photos')
    with op.batch_alter_table('wish_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wish_events_wish_id'))

    op.drop_table('wish_events')
    with op.batch_alter_table('wish_claimers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wish_claimers_openid'))

    op.drop_table('wish_claimers')
    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.drop_index('ix_wishes_status_community')
        batch_op.drop_index(batch_op.f('ix_wishes_openid'))

    op.drop_table('wishes')
    with op.batch_alter_table('party_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_members_community_id'))

    op.drop_table('party_members')
