"""Guest networking: the VIF plugin seam (base class, plugins found through
the compute.vif_plugins entry points). Imports nothing from compute or virt."""
