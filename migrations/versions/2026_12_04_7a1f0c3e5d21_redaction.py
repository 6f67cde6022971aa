"""redaction: withheld parts of recordings, redacted copies and waveforms

The ranges staff mark on an original recording, each request for a redacted copy (made by the worker), the
waveform of each recording, a copy's link to its original, and the practice's choice of silence or tone.

Revision ID: 7a1f0c3e5d21
Revises: 5b7e1d2c9a40
Create Date: 2026-12-04 23:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7a1f0c3e5d21"
down_revision = "5b7e1d2c9a40"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redacted_from_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_recording_redacted_from_id"), ["redacted_from_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_recording_redacted_from_id_recording"), "recording", ["redacted_from_id"], ["id"]
        )
    with op.batch_alter_table("practice_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redaction_fill", sa.String(length=16), nullable=True))
    op.create_table(
        "redaction_range",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("start_ms", sa.Integer(), nullable=False),
        sa.Column("end_ms", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["staff_user.id"], name=op.f("fk_redaction_range_created_by_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recording.id"], name=op.f("fk_redaction_range_recording_id_recording")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["staff_user.id"], name=op.f("fk_redaction_range_updated_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redaction_range")),
        sa.UniqueConstraint("public_id", name=op.f("uq_redaction_range_public_id")),
    )
    op.create_index(op.f("ix_redaction_range_recording_id"), "redaction_range", ["recording_id"], unique=False)
    op.create_table(
        "redacted_copy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("copy_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fill", sa.String(length=16), nullable=False),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=120), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.Column("proof", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["copy_id"], ["recording.id"], name=op.f("fk_redacted_copy_copy_id_recording")),
        sa.ForeignKeyConstraint(["original_id"], ["recording.id"], name=op.f("fk_redacted_copy_original_id_recording")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["staff_user.id"], name=op.f("fk_redacted_copy_requested_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redacted_copy")),
        sa.UniqueConstraint("public_id", name=op.f("uq_redacted_copy_public_id")),
    )
    op.create_index(op.f("ix_redacted_copy_original_id"), "redacted_copy", ["original_id"], unique=False)
    op.create_index(op.f("ix_redacted_copy_status"), "redacted_copy", ["status"], unique=False)
    op.create_table(
        "recording_waveform",
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("per_second", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("worker", sa.String(length=120), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recording.id"], name=op.f("fk_recording_waveform_recording_id_recording")
        ),
        sa.PrimaryKeyConstraint("recording_id", name=op.f("pk_recording_waveform")),
    )


def downgrade():
    op.drop_table("recording_waveform")
    op.drop_index(op.f("ix_redacted_copy_status"), table_name="redacted_copy")
    op.drop_index(op.f("ix_redacted_copy_original_id"), table_name="redacted_copy")
    op.drop_table("redacted_copy")
    op.drop_index(op.f("ix_redaction_range_recording_id"), table_name="redaction_range")
    op.drop_table("redaction_range")
    with op.batch_alter_table("practice_settings", schema=None) as batch_op:
        batch_op.drop_column("redaction_fill")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_recording_redacted_from_id_recording"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_recording_redacted_from_id"))
        batch_op.drop_column("redacted_from_id")
