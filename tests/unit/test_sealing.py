"""Credentials at rest (compute.core.sealing, and the database's use of it): a
record's secrets are tokens in the database, opened for the host that
sealed them only; a rotation seals them again under a new key while the
old one still opens what it sealed."""
import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from compute.cmd import manage
from compute.core import sealing
from compute.db.api import Database

CHAP = {"driver_volume_type": "iscsi", "data": {"auth_password": "chap-s3cret"}}
VOLUME = {"volume_id": "v1", "device": "vdd", "connection_info": CHAP}


def record(uuid="u1"):
    return dict(uuid=uuid, display_name="s", host="h1", vm_state="active", flavor={},
                image_ref="i", image_meta={}, disk_formats={}, networks=[], metadata_={},
                guest_data={"user_data": "dXNlci1kYXRhLXMzY3JldA==", "hostname": "s"},
                volumes=[VOLUME], task_args={"volume": VOLUME})


@pytest.fixture
def keyfile(tmp_path):
    return str(tmp_path / "seal.key")


def raw(db):
    with db.engine.connect() as conn:
        return " ".join(str(v) for row in conn.execute(text("SELECT * FROM instances"))
                        for v in row)


def test_secrets_are_tokens_in_the_database_and_open_for_their_host(tmp_path, keyfile):
    url = f"sqlite:///{tmp_path}/t.sqlite"
    db = Database(url, owner="h1", sealer=sealing.Sealer.from_file(keyfile))
    db.sync()
    made = db.instance_create(**record())
    assert made.volumes[0]["connection_info"] == CHAP            # the caller's view
    stored = raw(db)
    assert "chap-s3cret" not in stored and "dXNlci1kYXRhLXMzY3JldA==" not in stored
    inst = db.instance_get("u1")
    assert inst.volumes == [VOLUME] and inst.task_args == {"volume": VOLUME}
    assert inst.guest_data["user_data"] == "dXNlci1kYXRhLXMzY3JldA=="
    # another host's key opens nothing: the values stay sealed, and say so
    other = Database(url, owner="h2", sealer=sealing.Sealer([Fernet.generate_key()]))
    theirs = other.instance_get("u1", owner="h1")
    assert sealing.still_sealed({"volumes": theirs.volumes, "guest_data": theirs.guest_data}
                                ) == ["volume v1", "user data"]
    db.instance_update("u1", volumes=[])
    assert db.instance_get("u1").volumes == []


def test_rows_in_the_clear_are_sealed_and_a_rotation_seals_them_again(tmp_path, keyfile):
    url = f"sqlite:///{tmp_path}/t.sqlite"
    clear = Database(url, owner="h1")                 # written before sealing
    clear.sync()
    clear.instance_create(**record())
    assert "chap-s3cret" in raw(clear)
    running = Database(url, owner="h1", sealer=sealing.Sealer.from_file(keyfile))
    assert running.reseal_own() == 1 and running.reseal_own() == 0
    assert "chap-s3cret" not in raw(clear)
    old = sealing.load_keys(keyfile)

    class Conf:
        seal_key_file, host = keyfile, "h1"
        database = type("D", (), {"connection": url, "max_pool_size": 1, "max_overflow": 0,
                                  "pool_timeout": 5, "connection_recycle_time": 60})
    assert manage.rotate_seal_key(Conf) == 1
    keys = sealing.load_keys(keyfile)
    assert len(keys) == 2 and keys[1] == old[0] and keys[0] != old[0]
    with clear.engine.connect() as conn:
        token = json.loads(conn.execute(text("SELECT volumes FROM instances")).scalar()
                           )[0]["connection_info"]["sealed"]
    Fernet(keys[0]).decrypt(token.encode())            # the new key alone opens it
    assert running.instance_get("u1").volumes == [VOLUME]   # the agent read the file again


def test_a_key_file_that_is_not_keys_is_refused(keyfile):
    with open(keyfile, "w") as f:
        f.write("not a key\n")
    with pytest.raises(sealing.SealKeyError, match="no Fernet key"):
        sealing.Sealer.from_file(keyfile)
