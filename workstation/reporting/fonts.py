"""Fonts for the report: every name drawn correctly, whatever its script.

DejaVu Sans covers Latin (accents), Greek, Cyrillic, Hebrew and Arabic; Droid Sans Fallback
covers Chinese, Japanese and Korean. Text is split into runs by which font has the glyph;
Arabic is shaped and put in visual order first (reportlab draws left to right, glyph by
glyph). A character no font has is written as its code point, e.g. [U+1F600], so nothing is
silently dropped. If the bundled fonts are missing (a damaged install), the report falls back
to Helvetica and says so in its footer.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from workstation.paths import shipped

log = logging.getLogger(__name__)

FONT_FOLDER = shipped("resources") / "fonts"
FILES = {"Report": "DejaVuSans.ttf", "Report-Bold": "DejaVuSans-Bold.ttf", "Report-CJK": "DroidSansFallback.ttf"}
_RTL = ("R", "AL")


@dataclass(frozen=True)
class FontSet:
    regular: str
    bold: str
    fallbacks: tuple[str, ...]  # fonts tried in order for glyphs the regular font lacks
    missing: tuple[str, ...]  # bundled font files that could not be loaded

    def has_glyph(self, font: str, char: str) -> bool:
        if font.startswith("Helvetica"):
            return ord(char) < 256
        return ord(char) in pdfmetrics.getFont(font).face.charToGlyph


@lru_cache(maxsize=4)
def report_fonts(folder: Path = FONT_FOLDER) -> FontSet:
    """Register the bundled fonts once; what cannot be loaded is listed, not fatal."""
    loaded, missing = [], []
    for name, file in FILES.items():
        registered = f"{name}@{folder}"
        try:
            if registered not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(registered, str(folder / file)))
            loaded.append(name)
        except (OSError, TTFError) as exc:
            log.warning("report font %s not usable: %s", file, exc)
            missing.append(file)
    regular = f"Report@{folder}" if "Report" in loaded else "Helvetica"
    bold = f"Report-Bold@{folder}" if "Report-Bold" in loaded else ("Helvetica-Bold" if regular == "Helvetica"
                                                                     else regular)
    fallbacks = tuple(f"{name}@{folder}" for name in ("Report-CJK",) if name in loaded)
    return FontSet(regular, bold, fallbacks, tuple(missing))


def visual_order(text: str) -> str:
    """Arabic letters joined into their contextual forms and right-to-left runs reversed for drawing."""
    if not any(unicodedata.bidirectional(char) in _RTL for char in text):
        return text
    import arabic_reshaper
    from bidi import get_display

    return get_display(arabic_reshaper.reshape(text), base_dir="L")  # the report reads left to right


def markup(text: str, fonts: FontSet, bold: bool = False) -> str:
    """Paragraph markup for `text`: XML-escaped, in visual order, one <font> run per covering font."""
    base = fonts.bold if bold else fonts.regular
    runs: list[tuple[str, str]] = []
    for char in visual_order(str(text)):
        font = _font_for(char, base, fonts)
        piece = char if font else f"[U+{ord(char):04X}]"
        font = font or base
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + piece)
        else:
            runs.append((font, piece))
    return "".join(f'<font name="{font}">{escape(piece)}</font>' for font, piece in runs).replace("\n", "<br/>")


def _font_for(char: str, base: str, fonts: FontSet) -> str | None:
    if char in "\n\t " or fonts.has_glyph(base, char):
        return base
    return next((font for font in fonts.fallbacks if fonts.has_glyph(font, char)), None)
