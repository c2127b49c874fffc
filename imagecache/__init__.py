"""Images: the Glance v2 client, the _base cache of downloaded images,
qemu-img invocation, and compute-images (a small Glance v2 subset server).
Imports nothing from compute or virt."""
