"""instances.shelved_image_id: the image a shelve uploaded the root disk to

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("shelved_image_id", sa.String(255), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("shelved_image_id")
