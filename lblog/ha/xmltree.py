"""A tiny XML tree with line numbers, on expat, for the cluster managers' XML outputs.

ElementTree drops line numbers; error messages here must name the line. Entity
declarations are refused, so no input can expand into something large.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers import expat

from lblog.errors import ParseError


@dataclass
class Element:
    """An XML element: tag, attributes, children and the line it starts on."""

    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)

    def find(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def iter(self, tag: str) -> Iterator[Element]:
        """Every descendant (not self) with this tag, in document order."""
        stack = list(reversed(self.children))
        while stack:
            el = stack.pop()
            if el.tag == tag:
                yield el
            stack.extend(reversed(el.children))


def parse_xml(text: str, path: str) -> Element:
    """Parse ``text``; any XML error becomes ParseError(path, line, message)."""
    parser = expat.ParserCreate()
    stack: list[Element] = []
    roots: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = Element(tag, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            roots.append(el)
        stack.append(el)

    def end(tag: str) -> None:
        stack.pop()

    def refuse_entity(*args: object) -> None:
        raise ParseError(path, parser.CurrentLineNumber, "XML entity declarations are refused")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse_entity
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise ParseError(path, exc.lineno, f"not well-formed XML: {exc}") from None
    if not roots:
        raise ParseError(path, None, "no XML document")
    return roots[0]


def flag(el: Element, name: str, path: str, default: bool | None = None) -> bool:
    """A boolean attribute ("true"/"false", "1"/"0"); missing means ``default``."""
    value = el.attrs.get(name)
    if value is None:
        if default is None:
            raise ParseError(path, el.line, f"<{el.tag}> lacks attribute {name!r}")
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ParseError(path, el.line, f"<{el.tag}> {name}={value!r} is not a boolean")


def required(el: Element, name: str, path: str) -> str:
    """A non-empty attribute, or ParseError naming the element's line."""
    value = el.attrs.get(name, "").strip()
    if not value:
        raise ParseError(path, el.line, f"<{el.tag}> lacks attribute {name!r}")
    return value
