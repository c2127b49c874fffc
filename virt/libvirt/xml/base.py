"""Declarative XML elements bound to an lxml node.

An element class declares its properties once, each bound to a short path
relative to the element (``"@type"``, ``"name"``, ``"source/@file"``, or a
bare child name for a presence flag).  The object wraps an lxml node, so
building from scratch and parsing libvirt's XML are the same code, and
elements or attributes no class declares survive a parse/format round trip.

Paths are deliberately tiny: ``/``-separated child tags (Clark notation
``{ns}tag`` allowed), optionally ending in ``@attribute``.
"""
from lxml import etree


def _split(path):
    parts = path.split("/") if path else []
    attr = None
    if parts and parts[-1].startswith("@"):
        attr = parts.pop()[1:]
    return parts, attr


def _find(node, tags, create=False):
    for tag in tags:
        child = node.find(tag)
        if child is None:
            if not create:
                return None
            child = etree.SubElement(node, tag)
        node = child
    return node


def _prune(node, stop):
    """Remove now-empty elements from node up to (not including) stop."""
    while node is not stop and len(node) == 0 and not node.attrib and not (node.text or "").strip():
        parent = node.getparent()
        parent.remove(node)
        node = parent


class Prop:
    """A scalar bound to an attribute or to the text of a child element.

    kind is str, int or bool; bool values are written as ``true``/``false``
    words given by ``words`` (libvirt uses yes/no and on/off in places).
    ``presence=True`` makes a bool that is true when the element exists.
    """

    def __init__(self, path, kind=str, words=("yes", "no"), presence=False):
        self.tags, self.attr = _split(path)
        self.kind, self.words, self.presence = kind, words, presence

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        node = _find(obj.node, self.tags)
        if self.presence:
            return node is not None
        if node is None:
            return None
        raw = node.get(self.attr) if self.attr else node.text
        if raw is None:
            return None
        if self.kind is bool:
            return raw == self.words[0]
        return self.kind(raw.strip() if self.kind is int else raw)

    def __set__(self, obj, value):
        if self.presence:
            node = _find(obj.node, self.tags)
            if value and node is None:
                _find(obj.node, self.tags, create=True)
            elif not value and node is not None:
                _prune_leaf(node, obj.node)
            return
        if value is None:
            node = _find(obj.node, self.tags)
            if node is not None:
                if self.attr:
                    node.attrib.pop(self.attr, None)
                else:
                    node.text = None
                _prune(node, obj.node)
            return
        if self.kind is bool:
            text = self.words[0] if value else self.words[1]
        else:
            text = str(self.kind(value))
        node = _find(obj.node, self.tags, create=True)
        if self.attr:
            node.set(self.attr, text)
        else:
            node.text = text


def _prune_leaf(node, stop):
    parent = node.getparent()
    parent.remove(node)
    _prune(parent, stop)


class _Nested:
    """A nested element of class cls at path (default: its own tag)."""

    def __init__(self, cls, path=None):
        self.cls = cls
        self.tags, _ = _split(path or cls.TAG)


class Child(_Nested):
    """One nested element, wrapped in its own element class."""

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        node = _find(obj.node, self.tags)
        return None if node is None else self.cls(node)

    def __set__(self, obj, value):
        old = _find(obj.node, self.tags)
        if old is not None:
            _prune_leaf(old, obj.node)
        if value is not None:
            _find(obj.node, self.tags[:-1], create=True).append(value.node)


class ChildList:
    """Live view of repeated child elements: iterate, index, append, remove."""

    def __init__(self, owner, tags, cls):
        self._owner, self._tags, self._cls = owner, tags, cls

    def _nodes(self):
        parent = _find(self._owner, self._tags[:-1])
        return [] if parent is None else parent.findall(self._tags[-1])

    def __iter__(self):
        return (self._cls(n) for n in self._nodes())

    def __len__(self):
        return len(self._nodes())

    def __getitem__(self, index):
        return self._cls(self._nodes()[index])

    def append(self, element):
        _find(self._owner, self._tags[:-1], create=True).append(element.node)
        return element

    def remove(self, element):
        element.node.getparent().remove(element.node)


class Children(_Nested):
    """Repeated nested elements of one class, as a ChildList."""

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return ChildList(obj.node, self.tags, self.cls)


class Element:
    """Base of every element class: TAG (and NSMAP for namespaced roots)."""

    TAG = None
    NSMAP = None

    def __init__(self, node=None, **values):
        if node is None:
            node = etree.Element(self.TAG, nsmap=self.NSMAP)
        elif node.tag != self.TAG:
            raise ValueError(f"expected <{self.TAG}>, got <{node.tag}>")
        self.node = node
        for name, value in values.items():
            if not isinstance(getattr(type(self), name, None), (Prop, Child)):
                raise AttributeError(f"{type(self).__name__} has no property {name!r}")
            setattr(self, name, value)

    @classmethod
    def parse(cls, text):
        parser = etree.XMLParser(resolve_entities=False, no_network=True,
                                 remove_blank_text=True)
        if isinstance(text, str):
            text = text.encode()
        return cls(etree.fromstring(text, parser))

    def to_xml(self, pretty=True):
        return etree.tostring(self.node, pretty_print=pretty, encoding="unicode")

    def __repr__(self):
        return f"<{type(self).__name__} {self.to_xml(pretty=False)[:80]}>"
