"""Images: the Glance v2 client, the _base cache of downloaded images,
and qemu-img invocation.
Imports nothing from compute or virt."""
