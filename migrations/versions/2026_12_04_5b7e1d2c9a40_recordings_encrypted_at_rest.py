"""recordings encrypted at rest

Each recording's store, the id of the key that wraps its data key, the wrapped data key and its chunk size;
the recording_chunk table for the database store. Rows from before have no store until
`flask recordings encrypt-files` moves their plain files into it.

Revision ID: 5b7e1d2c9a40
Revises: c62b5090f744
Create Date: 2026-12-04 20:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5b7e1d2c9a40"
down_revision = "c62b5090f744"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "recording_chunk",
        sa.Column("object_name", sa.String(length=80), nullable=False),
        sa.Column("chunk_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_name", "chunk_index", name=op.f("pk_recording_chunk")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Ciphertext does not compress: store it out of line without trying to.
        op.execute("ALTER TABLE recording_chunk ALTER COLUMN data SET STORAGE EXTERNAL")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("chunk_size", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("chunk_size")
        batch_op.drop_column("wrapped_key")
        batch_op.drop_column("key_id")
        batch_op.drop_column("storage")
    op.drop_table("recording_chunk")
