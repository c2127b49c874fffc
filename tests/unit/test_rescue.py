"""What a rescue boots with (pure)."""
from compute.parts.rescue import rescue_image_meta


def test_a_rescue_keeps_the_instances_tpm():
    rescue = {"disk_format": "qcow2", "properties": {"os_command_line": "x", "hw_tpm_version":
                                                     "2.0", "hw_tpm_model": "tpm-crb"}}
    own = {"properties": {"hw_tpm_version": "2.0"}}
    meta = rescue_image_meta(rescue, own)
    assert meta["properties"] == {"os_command_line": "x", "hw_tpm_version": "2.0"}
    assert meta["disk_format"] == "qcow2"
    assert rescue_image_meta(rescue, {})["properties"] == {"os_command_line": "x"}
