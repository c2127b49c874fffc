"""Libvirt domain XML as declarative element classes (see base.py)."""
