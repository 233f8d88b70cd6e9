"""deliberation and votes: the owners' register, proposals in the shared number space, meetings, votes,
ballots, objections, conventions, tasks and ratings; exact household areas

Revision ID: 0007_deliberation
Revises: 0006_community
Create Date: 2026-12-03 09:35:46.429348
"""
from alembic import op
import sqlalchemy as sa

from storage.ids import ticket_number


def _decimal(precision: int, scale: int):
    """storage.decimals.ExactDecimal as stored: NUMERIC on PostgreSQL, its text on SQLite."""
    return sa.Numeric(precision, scale).with_variant(sa.String(precision + 2), 'sqlite')


revision = '0007_deliberation'
down_revision = '0006_community'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deliberation_settings',
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cosign_households', sa.Integer(), nullable=True),
    sa.Column('cosign_percent', _decimal(5, 2), nullable=True),
    sa.Column('comments_per_day', sa.Integer(), nullable=True),
    sa.Column('comment_chars', sa.Integer(), nullable=True),
    sa.Column('objection_days', sa.Integer(), nullable=True),
    sa.Column('remind_hours', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_deliberation_settings_community_id_communities')),
    sa.PrimaryKeyConstraint('community_id', name=op.f('pk_deliberation_settings'))
    )
    op.create_table('owners',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('register_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=True),
    sa.Column('bound_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_owners_community_id_communities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_owners')),
    sa.UniqueConstraint('code', name=op.f('uq_owners_code')),
    sa.UniqueConstraint('community_id', 'register_id', name=op.f('uq_owners_community_id_register_id'))
    )
    with op.batch_alter_table('owners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_owners_openid'), ['openid'], unique=False)

    op.create_table('building_captains',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('building_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_building_captains_building_id_buildings')),
    sa.PrimaryKeyConstraint('openid', 'building_id', name=op.f('pk_building_captains'))
    )
    op.create_table('owner_flats',
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_owner_flats_household_id_households')),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], name=op.f('fk_owner_flats_owner_id_owners')),
    sa.PrimaryKeyConstraint('owner_id', 'household_id', name=op.f('pk_owner_flats'))
    )
    with op.batch_alter_table('owner_flats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_owner_flats_household_id'), ['household_id'], unique=False)

    op.create_table('comments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('hidden_at', sa.DateTime(), nullable=True),
    sa.Column('hidden_by', sa.String(length=64), nullable=True),
    sa.Column('hidden_reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_comments_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments')),
    sa.UniqueConstraint('proposal_id', 'openid', 'day', 'slot', name=op.f('uq_comments_proposal_id_openid_day_slot'))
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('cosignatures',
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_cosignatures_household_id_households')),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_cosignatures_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('proposal_id', 'household_id', name=op.f('pk_cosignatures'))
    )
    op.create_table('meetings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('minutes', sa.Text(), nullable=False),
    sa.Column('minutes_at', sa.DateTime(), nullable=True),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_meetings_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meetings')),
    sa.UniqueConstraint('number', name=op.f('uq_meetings_number'))
    )
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meetings_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('outcome_ratings',
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_outcome_ratings_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('proposal_id', 'openid', name=op.f('pk_outcome_ratings'))
    )
    op.create_table('votes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.BigInteger(), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('rule', sa.String(length=24), nullable=False),
    sa.Column('quorum', sa.String(length=16), nullable=False),
    sa.Column('approval', sa.String(length=16), nullable=False),
    sa.Column('budget', _decimal(14, 2), nullable=True),
    sa.Column('secret', sa.Boolean(), nullable=False),
    sa.Column('advisory', sa.Boolean(), nullable=False),
    sa.Column('convention', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closes_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('objection_days', sa.Integer(), nullable=False),
    sa.Column('objection_until', sa.DateTime(), nullable=True),
    sa.Column('finalised_at', sa.DateTime(), nullable=True),
    sa.Column('reminded_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_votes_community_id_communities')),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_votes_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_votes')),
    sa.UniqueConstraint('number', name=op.f('uq_votes_number'))
    )
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_votes_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index('ix_votes_status_closes', ['status', 'closes_at'], unique=False)

    op.create_table('ballot_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('voter', sa.String(length=80), nullable=False),
    sa.Column('choice', sa.Integer(), nullable=False),
    sa.Column('picks', sa.String(length=200), nullable=False),
    sa.Column('receipt', sa.String(length=16), nullable=False),
    sa.Column('cast_at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('cast_by', sa.String(length=64), nullable=False),
    sa.Column('entered_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_ballot_history_vote_id_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ballot_history')),
    sa.UniqueConstraint('vote_id', 'receipt', name=op.f('uq_ballot_history_vote_id_receipt'))
    )
    with op.batch_alter_table('ballot_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ballot_history_vote_id'), ['vote_id'], unique=False)

    op.create_table('ballots',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('voter', sa.String(length=80), nullable=False),
    sa.Column('choice', sa.Integer(), nullable=False),
    sa.Column('picks', sa.String(length=200), nullable=False),
    sa.Column('receipt', sa.String(length=16), nullable=False),
    sa.Column('cast_at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_ballots_vote_id_votes')),
    sa.PrimaryKeyConstraint('vote_id', 'voter', name=op.f('pk_ballots'))
    )
    op.create_table('budget_projects',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('cost', _decimal(14, 2), nullable=False),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_budget_projects_vote_id_votes')),
    sa.PrimaryKeyConstraint('vote_id', 'position', name=op.f('pk_budget_projects'))
    )
    op.create_table('conventions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('adopted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_conventions_community_id_communities')),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_conventions_proposal_id_proposals')),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_conventions_vote_id_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conventions')),
    sa.UniqueConstraint('vote_id', name=op.f('uq_conventions_vote_id'))
    )
    with op.batch_alter_table('conventions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conventions_community_id'), ['community_id'], unique=False)

    op.create_table('deliberation_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_deliberation_events_proposal_id_proposals')),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_deliberation_events_vote_id_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliberation_events'))
    )
    with op.batch_alter_table('deliberation_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliberation_events_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliberation_events_vote_id'), ['vote_id'], unique=False)

    op.create_table('deliberation_tasks',
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_deliberation_tasks_proposal_id_proposals')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_deliberation_tasks_ticket_id_tickets')),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_deliberation_tasks_vote_id_votes')),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_deliberation_tasks'))
    )
    with op.batch_alter_table('deliberation_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliberation_tasks_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('meeting_signins',
    sa.Column('meeting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_meeting_signins_household_id_households')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_meeting_signins_meeting_id_meetings')),
    sa.PrimaryKeyConstraint('meeting_id', 'openid', name=op.f('pk_meeting_signins'))
    )
    op.create_table('objections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answered_by', sa.String(length=64), nullable=True),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_objections_vote_id_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_objections'))
    )
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_objections_vote_id'), ['vote_id'], unique=False)

    op.create_table('vote_holders',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('voter', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], name=op.f('fk_vote_holders_owner_id_owners')),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_vote_holders_vote_id_votes')),
    sa.PrimaryKeyConstraint('vote_id', 'owner_id', 'voter', name=op.f('pk_vote_holders'))
    )
    op.create_table('vote_parts',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('part', sa.String(length=80), nullable=False),
    sa.Column('voter', sa.String(length=80), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('building_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('area', _decimal(10, 2), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_vote_parts_building_id_buildings')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_vote_parts_household_id_households')),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_vote_parts_vote_id_votes')),
    sa.PrimaryKeyConstraint('vote_id', 'part', name=op.f('pk_vote_parts'))
    )
    op.create_table('vote_voters',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('voter', sa.String(length=80), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('voted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_vote_voters_vote_id_votes')),
    sa.PrimaryKeyConstraint('vote_id', 'voter', name=op.f('pk_vote_voters'))
    )
    _exact_floor_area()
    _proposals_in_the_shared_number_space()


def _exact_floor_area() -> None:
    """households.floor_area: a float becomes an exact decimal of two places (registered areas have two)."""
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('households', 'floor_area', existing_type=sa.Float(), type_=sa.Numeric(10, 2),
                        postgresql_using='round(floor_area::numeric, 2)', existing_nullable=False)
        return
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.alter_column('floor_area', existing_type=sa.Float(), type_=sa.String(12), existing_nullable=False)
    op.execute("UPDATE households SET floor_area = printf('%.2f', CAST(floor_area AS REAL))")


def _proposals_in_the_shared_number_space() -> None:
    """Proposals get the columns of a whole matter, and a number like tickets'. Rows from before keep their
    ids (all below the tickets' first id, 10000) and get the check digit; new ids come from the tickets'
    sequence, so the table's own sequence goes."""
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=False, server_default='community'))
        batch_op.add_column(sa.Column('scope_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('proposer', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('merged_into', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('reached_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_proposals_community_id'), ['community_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_proposals_household_id_households'), 'households', ['household_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_proposals_merged_into_proposals'), 'proposals', ['merged_into'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_proposals_community_id_communities'), 'communities', ['community_id'], ['id'])
    conn = op.get_bind()
    proposals = sa.table('proposals', sa.column('id', sa.BigInteger()), sa.column('number', sa.String()))
    for (proposal_id,) in conn.execute(sa.select(proposals.c.id)).all():
        conn.execute(proposals.update().where(proposals.c.id == proposal_id).values(number=ticket_number(proposal_id)))
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.alter_column('number', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_proposals_number'), ['number'])
        for column in ('text', 'scope', 'reason'):  # the model's defaults take over
            batch_op.alter_column(column, server_default=None)
    if conn.dialect.name == 'postgresql':
        op.execute('ALTER TABLE proposals ALTER COLUMN id DROP DEFAULT')
        op.execute('DROP SEQUENCE IF EXISTS proposals_id_seq')


def downgrade() -> None:
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_proposals_community_id_communities'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_proposals_merged_into_proposals'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_proposals_household_id_households'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_proposals_number'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_proposals_community_id'))
        batch_op.drop_column('reached_at')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('reason')
        batch_op.drop_column('merged_into')
        batch_op.drop_column('household_id')
        batch_op.drop_column('proposer')
        batch_op.drop_column('scope_id')
        batch_op.drop_column('scope')
        batch_op.drop_column('community_id')
        batch_op.drop_column('text')
        batch_op.drop_column('number')

    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('households', 'floor_area', existing_type=sa.Numeric(10, 2), type_=sa.Float(),
                        existing_nullable=False)
    else:
        with op.batch_alter_table('households', schema=None) as batch_op:
            batch_op.alter_column('floor_area', existing_type=sa.String(12), type_=sa.Float(), existing_nullable=False)

    op.drop_table('vote_voters')
    op.drop_table('vote_parts')
    op.drop_table('vote_holders')
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_objections_vote_id'))

    op.drop_table('objections')
    op.drop_table('meeting_signins')
    with op.batch_alter_table('deliberation_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliberation_tasks_proposal_id'))

    op.drop_table('deliberation_tasks')
    with op.batch_alter_table('deliberation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliberation_events_vote_id'))
        batch_op.drop_index(batch_op.f('ix_deliberation_events_proposal_id'))

    op.drop_table('deliberation_events')
    with op.batch_alter_table('conventions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conventions_community_id'))

    op.drop_table('conventions')
    op.drop_table('budget_projects')
    op.drop_table('ballots')
    with op.batch_alter_table('ballot_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ballot_history_vote_id'))

    op.drop_table('ballot_history')
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_index('ix_votes_status_closes')
        batch_op.drop_index(batch_op.f('ix_votes_proposal_id'))

    op.drop_table('votes')
    op.drop_table('outcome_ratings')
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meetings_proposal_id'))

    op.drop_table('meetings')
    op.drop_table('cosignatures')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_proposal_id'))

    op.drop_table('comments')
    with op.batch_alter_table('owner_flats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_owner_flats_household_id'))

    op.drop_table('owner_flats')
    op.drop_table('building_captains')
    with op.batch_alter_table('owners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_owners_openid'))

    op.drop_table('owners')
    op.drop_table('deliberation_settings')
