"""security_groups and floating_ips: what the firewall and NAT are built from

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "floating_ips",
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("fixed_ip", sa.String(length=45), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index("ix_floating_ips_host", "floating_ips", ["host"])
    op.create_index("ix_floating_ips_instance_uuid", "floating_ips", ["instance_uuid"])


def downgrade():
    op.drop_table("floating_ips")
    op.drop_table("security_groups")
