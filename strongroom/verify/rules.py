"""STRONGROOM_FORWARD_RULES: which scopes a proxied request needs, by method and path.

One rule a line, ``METHODS PATH-PATTERN SCOPES...``; ``#`` starts a comment::

    # method(s)   path pattern     required scopes
    POST,DELETE   /orders*         write
    GET           /orders*         read
    *             /admin/*         read write

``METHODS`` is ``*`` or a comma-separated list; ``PATH-PATTERN`` a shell-style pattern matched
against the path without its query (``*`` also matches ``/``); ``SCOPES`` one or more scopes, or
``-`` for none (any valid key). The first rule that matches wins; a request no rule matches needs
no scope beyond a valid key.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote

from strongroom import scopes as scope_rules

_METHOD = re.compile(r"^[A-Z]{1,16}$")


class RulesError(ValueError):
    """A rules file that cannot be used: the message names the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class ForwardRule:
    """Requests whose method is in ``methods`` (None: any) and whose path matches ``pattern`` need ``scopes``."""

    methods: frozenset[str] | None
    pattern: str
    scopes: tuple[str, ...]

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and fnmatchcase(path, self.pattern)


def parse_rules(text: str) -> tuple[ForwardRule, ...]:
    """Return the rules of ``text``. Raises RulesError naming the first bad line."""
    rules: list[ForwardRule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 3:
            raise RulesError(f"line {number}: expected METHODS PATH-PATTERN SCOPES")
        methods_word, pattern, *wanted = words
        methods: frozenset[str] | None = None
        if methods_word != "*":
            names = [m.strip().upper() for m in methods_word.split(",")]
            if not all(_METHOD.match(m) for m in names):
                raise RulesError(f"line {number}: methods must be * or a list such as GET,POST")
            methods = frozenset(names)
        if not pattern.startswith("/"):
            raise RulesError(f"line {number}: the path pattern must start with /")
        if wanted == ["-"]:
            wanted = []
        bad = [s for s in wanted if not scope_rules.SCOPE_RE.match(s)]
        if bad:
            raise RulesError(f"line {number}: unknown scope {bad[0][:40]!r}")
        rules.append(ForwardRule(methods, pattern, tuple(dict.fromkeys(wanted))))
    return tuple(rules)


def load_rules(path: Path) -> tuple[ForwardRule, ...]:
    """Return the rules of the file at ``path``. Raises RulesError (unreadable or malformed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read {path} ({type(exc).__name__})") from None
    return parse_rules(text)


def _variants(method: str, path: str) -> set[tuple[str, str]]:
    """The ways an upstream may read (``method``, ``path``): as sent, and percent-decoded with dot segments
    resolved (``/%6Frders/./1`` is ``/orders/1`` to most servers); ``HEAD`` also as ``GET`` (most servers
    answer HEAD with their GET route)."""
    decoded = unquote(path)
    normal = posixpath.normpath(decoded) if decoded.startswith("/") else decoded
    if decoded.endswith("/") and not normal.endswith("/"):
        normal += "/"
    methods = {method, "GET"} if method == "HEAD" else {method}
    return {(m, p) for m in methods for p in (path, decoded, normal)}


def required_scopes(rules: tuple[ForwardRule, ...], method: str, path: str) -> tuple[str, ...]:
    """Return the scopes the rules require of the request: for each way an upstream may read its method
    and path (see :func:`_variants`), the first matching rule's scopes; all of them together (none if no
    rule matches), so an encoding of the path cannot step around a rule."""
    needed: dict[str, None] = {}
    for variant_method, variant_path in sorted(_variants(method, path)):
        for rule in rules:
            if rule.matches(variant_method, variant_path):
                needed.update(dict.fromkeys(rule.scopes))
                break
    return tuple(needed)
