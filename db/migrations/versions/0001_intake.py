"""Intake: sources, images, provenance, rejections, audit log.

Revision ID: 0001_intake
Revises: 
Create Date: 2026-11-25 18:40:18.653416
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001_intake'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('command_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('command', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('arguments', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('tool_version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('exif_orientation', sa.Integer(), nullable=True),
    sa.Column('has_exif', sa.Boolean(), nullable=False),
    sa.Column('has_gps', sa.Boolean(), nullable=False),
    sa.Column('has_camera_serial', sa.Boolean(), nullable=False),
    sa.Column('pixel_sha256', sa.String(length=64), nullable=True),
    sa.Column('phash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_pixel_sha256'), ['pixel_sha256'], unique=False)

    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('licence', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('provenance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('locator', sa.Text(), nullable=False),
    sa.Column('prior_label', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('licence', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('query', sa.Text(), nullable=True),
    sa.Column('licence_requested', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('page_url', sa.Text(), nullable=True),
    sa.Column('image_url', sa.Text(), nullable=True),
    sa.Column('final_url', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('retrieved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['command_runs.id'], ),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('image_id', 'source_id', 'locator', name='uq_provenance_arrival')
    )
    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provenance_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_provenance_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_provenance_source_id'), ['source_id'], unique=False)

    op.create_table('rejections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('locator', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['command_runs.id'], ),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejections_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rejections_source_id'), ['source_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejections_source_id'))
        batch_op.drop_index(batch_op.f('ix_rejections_run_id'))

    op.drop_table('rejections')
    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provenance_source_id'))
        batch_op.drop_index(batch_op.f('ix_provenance_image_id'))
        batch_op.drop_index(batch_op.f('ix_provenance_case_id'))

    op.drop_table('provenance')
    op.drop_table('sources')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_pixel_sha256'))

    op.drop_table('images')
    op.drop_table('command_runs')
