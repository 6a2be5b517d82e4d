"""Griffe extension for the docs build: render Sphinx roles in docstrings as cross-references.

The package's numpydoc docstrings use Sphinx roles (``:class:`UserHoldoutSplit```,
``:func:`make_synthetic```, ``:data:`diffmm.metrics.METRICS```), which mkdocstrings would show
verbatim. This rewrites each role into an mkdocstrings cross-reference when its target is a
documented object of the package (resolved like Sphinx does: as written, then relative to the
enclosing class and module), and into plain inline code otherwise (``pickle.load``, or a
dataclass field without a docstring of its own). Docstrings
in the source stay untouched; this runs only while the site is built.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")


def _resolve(pkg: griffe.Module, obj: griffe.Object, role: str, target: str) -> str | None:
    """The canonical path of ``target`` as seen from ``obj``, or ``None`` outside the package."""
    scopes = []
    node = obj
    while node is not None:  # the object itself, its class, its module, ... the package
        # Methods and attributes are looked up in classes; functions, data etc. in modules.
        if role in ("meth", "attr", "obj") or node.is_module:
            scopes.append(node.path)
        node = node.parent
    for path in [target] + [f"{scope}.{target}" for scope in scopes]:
        if path != pkg.path and not path.startswith(pkg.path + "."):
            continue
        relative = path[len(pkg.path) + 1 :]
        try:
            found = pkg[relative] if relative else pkg
            if found.is_alias:
                found = found.final_target
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        # Only documented objects get a page anchor (undocumented ones are not rendered).
        return found.path if found.docstring is not None else None
    return None


class SphinxRoles(griffe.Extension):
    """Replace Sphinx roles by Markdown cross-references once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, pkg, set())

    def _rewrite(self, pkg: griffe.Module, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":" in obj.docstring.value:

            def replace(match: re.Match[str]) -> str:
                role, tilde, target = match.group(1), match.group(2), match.group(3).strip()
                path = _resolve(pkg, obj, role, target)
                shown = target.rsplit(".", 1)[-1] if tilde else target
                return f"[`{shown}`][{path}]" if path else f"`{shown}`"

            obj.docstring.value = _ROLE.sub(replace, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(pkg, member, seen)
