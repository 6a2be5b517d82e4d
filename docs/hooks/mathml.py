"""Render the pages' TeX as MathML when the site is built, so maths shows offline.

``pymdownx.arithmatex`` (generic mode) leaves ``\\(...\\)`` in ``<span class="arithmatex">``
and ``\\[...\\]`` in ``<div class="arithmatex">``; this hook replaces each with the MathML
that ``latex2mathml`` makes of it. Browsers draw MathML themselves: no script, no CDN.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_INLINE = re.compile(r'<span class="arithmatex">\\\((.+?)\\\)</span>', re.S)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.+?)\\\]</div>', re.S)


def _mathml(tex: str, display: bool) -> str:
    return convert(html.unescape(tex).strip(), display="block" if display else "inline")


def on_page_content(content: str, **kwargs) -> str:
    content = _DISPLAY.sub(lambda m: f'<div class="math">{_mathml(m[1], True)}</div>', content)
    return _INLINE.sub(lambda m: _mathml(m[1], False), content)
