"""The folders are the layers (read from the code, not kept by hand): a
module imports only from its own layer or the ones below it; the packages
below compute/ never import it; nothing installed imports devtools/."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# top to bottom; a module may import from its own layer and those after it
COMPUTE = ["compute.cmd", "compute.client", "compute.agent", "compute.parts", "compute.rpc",
           "compute.db", "compute.core"]
BELOW = ["virt", "network", "volume", "imagecache", "console", "privileged"]


def modules():
    """(dotted name, parsed module) of every module of the installed packages."""
    for top in ("compute", *BELOW):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    with open(path) as f:
                        yield dotted.removesuffix(".__init__"), ast.parse(f.read(), path)


def imported(tree):
    """(line, dotted module) of every import in a module, in functions too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)


def layer(dotted):
    """The index of dotted's layer (0 is the top), or None outside them."""
    order = COMPUTE + BELOW
    for i, prefix in enumerate(order):
        if dotted == prefix or dotted.startswith(prefix + "."):
            return i if i < len(COMPUTE) else len(COMPUTE)
    return None


def upward(mods):
    """(module, line, what it imports) for every import of a higher layer."""
    found = []
    for name, tree in mods:
        own = layer(name)
        for line, target in imported(tree):
            if target.startswith("devtools"):
                found.append((name, line, target))
            there = layer(target)
            if own is not None and there is not None and there < own:
                found.append((name, line, target))
            elif own is None and name.startswith("compute") and there is not None:
                found.append((name, line, target))     # compute/x.py outside every layer
    return found


def test_every_compute_module_is_in_a_layer_folder():
    loose = [name for name, _ in modules()
             if name.startswith("compute") and name != "compute" and layer(name) is None]
    assert loose == []


def test_no_import_runs_up_a_layer():
    assert upward(modules()) == []


def test_the_check_finds_an_upward_import():
    bad = [("compute.core.states", ast.parse("from compute.parts import builds\n")),
           ("compute.rpc.endpoint", ast.parse("def f():\n    import compute.agent.manager\n")),
           ("virt.libvirt.driver", ast.parse("from compute.core import exception\n")),
           ("compute.agent.service", ast.parse("from devtools import imageservice\n"))]
    assert upward(bad) == [("compute.core.states", 1, "compute.parts.builds"),
                           ("compute.rpc.endpoint", 2, "compute.agent.manager"),
                           ("virt.libvirt.driver", 1, "compute.core.exception"),
                           ("compute.agent.service", 1, "devtools.imageservice")]
