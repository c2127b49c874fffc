"""instances.image_meta and disk_formats: what regenerating the XML needs

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("instances") as batch_op:
        batch_op.add_column(sa.Column("image_meta", sa.JSON(), nullable=False,
                                      server_default="{}"))
        batch_op.add_column(sa.Column("disk_formats", sa.JSON(), nullable=False,
                                      server_default="{}"))


def downgrade():
    with op.batch_alter_table("instances") as batch_op:
        batch_op.drop_column("disk_formats")
        batch_op.drop_column("image_meta")
