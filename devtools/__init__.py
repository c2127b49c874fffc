"""Tools for development and tests that ship in no package: compute-images,
the small Glance v2 subset server (python -m devtools.imageservice)."""
