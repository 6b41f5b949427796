"""A report's HTML -> an A4 PDF with fpdf2 (pure Python, pinned in pyproject.toml): no browser, no system package.

The PDF is laid out from the same rendered HTML the reader sees, so its text, tables and charts
come from one template and one formatter. Our templates use a small subset of HTML, and this
module lays out exactly that subset:

- ``h1``/``h2``/``h3``, ``p``, ``li``, ``figcaption``, ``footer``: text blocks (``sub``/``i``/``strong``
  as plain text; the header's kicker and sub-title as small text);
- ``table``: fpdf2 tables with ``colspan``/``rowspan``; a cell's background comes from its CSS class
  in ``report.css`` (the z-score colours, ``suppressed``, ``unreliable-mark``), its alignment from
  ``num``; ``<small>`` notes inside a cell go on a line of their own;
- ``img`` with an SVG data URI (our charts): drawn as vector graphics at the page's width.

``nav`` and anything unknown are skipped. The core PDF fonts (Helvetica) hold Windows-1252; the few
characters outside it (≥, ≤, −, σ, x̄) are written as ASCII (:data:`ASCII_FALLBACK`).
"""
from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from rom_pipeline.reports.render import TEMPLATES_DIR

for _name in ("fpdf.svg", "fpdf.html", "fontTools.subset"):
    logging.getLogger(_name).setLevel(logging.ERROR)  # "ignoring unsupported SVG tag <title>" and the like

from fpdf import FPDF  # noqa: E402

ASCII_FALLBACK = {"x̄": "gem(x)", "≥": ">=", "≤": "<=", "−": "-", "σ": "s", "̄": "", "√": "wortel ", "×": "x", "±": "+/-"}
FONT = "helvetica"
INK, MUTED, ACCENT, RULE, HEAD = (31, 35, 40), (95, 107, 118), (31, 78, 154), (201, 209, 217), (232, 238, 245)


class PdfError(RuntimeError):
    pass


def _pdf_text(text: str) -> str:
    for char, repl in ASCII_FALLBACK.items():
        text = text.replace(char, repl)
    return text.encode("cp1252", errors="replace").decode("cp1252")


def _hex(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def _class_colours() -> dict[str, tuple[tuple | None, tuple | None]]:
    """CSS class -> (background, text colour) from report.css: one place for the colours of HTML and PDF."""
    css = (TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")
    out = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        bg = re.search(r"background(?:-color)?:\s*(#[0-9a-fA-F]{6})", body)
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", body)
        for sel in selectors.split(","):
            sel = sel.strip()
            if re.fullmatch(r"\.[\w-]+", sel):
                out[sel[1:]] = (_hex(bg.group(1)) if bg else None, _hex(fg.group(1)) if fg else None)
    return out


# --- the HTML subset as blocks -------------------------------------------------------------------------

@dataclass
class Cell:
    text: str = ""
    notes: list[str] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)
    header: bool = False
    colspan: int = 1
    rowspan: int = 1


@dataclass
class Block:
    kind: str                     # h1 h2 h3 p li caption small table img
    text: str = ""
    rows: list[list[Cell]] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)
    svg: bytes = b""


class _Blocks(HTMLParser):
    TEXT = {"h1", "h2", "h3", "p", "li", "figcaption", "footer"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: Block | None = None
        self._table: Block | None = None
        self._cell: Cell | None = None
        self._small = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if tag in ("nav", "style", "title", "script"):
            self._skip += 1
        elif self._skip:
            return
        elif tag == "table":
            self._table = Block("table", classes=classes)
        elif tag == "tr" and self._table is not None:
            self._table.rows.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = Cell(classes=classes, header=tag == "th", colspan=int(a.get("colspan") or 1),
                              rowspan=int(a.get("rowspan") or 1))
        elif tag == "small":
            self._small += 1
            if self._cell is not None:
                self._cell.notes.append("")
        elif tag == "br" and self._text is not None:
            self._text.text += "\n"
        elif tag == "img" and (a.get("src") or "").startswith("data:image/svg+xml;base64,"):
            svg = base64.b64decode(a["src"].split(",", 1)[1])
            self.blocks.append(Block("img", svg=_pdf_text(svg.decode("utf-8")).encode("utf-8")))
        elif tag in self.TEXT and self._table is None:
            kind = {"figcaption": "caption", "footer": "small"}.get(tag, tag)
            if "kicker" in classes or "sub" in classes or "note" in classes or "muted" in classes:
                kind = "small" if tag == "p" else kind
            self._text = Block(kind, classes=classes)

    def handle_endtag(self, tag):
        if tag in ("nav", "style", "title", "script"):
            self._skip = max(0, self._skip - 1)
        elif self._skip:
            return
        elif tag == "table" and self._table is not None:
            self.blocks.append(self._table)
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None and self._table.rows:
            self._cell.text = " ".join(self._cell.text.split())
            self._cell.notes = [" ".join(n.split()) for n in self._cell.notes if n.strip()]
            self._table.rows[-1].append(self._cell)
            self._cell = None
        elif tag == "small":
            self._small = max(0, self._small - 1)
        elif tag in self.TEXT and self._text is not None:
            self._text.text = "\n".join(re.sub(r"\s+", " ", part).strip() for part in self._text.text.split("\n"))
            if self._text.text:
                self.blocks.append(self._text)
            self._text = None

    def handle_data(self, data):
        if self._skip:
            return
        if self._cell is not None:
            if self._small and self._cell.notes:
                self._cell.notes[-1] += data
            else:
                self._cell.text += data
        elif self._text is not None:
            self._text.text += data.replace("\n", " ")  # source line breaks; <br> adds a real one


def html_blocks(html: str) -> list[Block]:
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    return parser.blocks


# --- layout ------------------------------------------------------------------------------------------------

class _Pdf(FPDF):
    footer_text = ""

    def footer(self):
        self.set_y(-10)
        self.set_font(FONT, size=7)
        self.set_text_color(*MUTED)
        self.cell(0, 4, _pdf_text(f"{self.footer_text}  ·  pagina {self.page_no()}/{{nb}}"), align="R")


def _width(pdf: FPDF, text: str) -> float:
    """Width of ``text`` in the current core font, in mm (fpdf2's get_string_width, without its per-call
    text shaping: the reports measure thousands of words)."""
    cw = pdf.current_font.cw
    return sum(cw.get(ch, 556) for ch in text) * pdf.font_size / 1000


def _put(pdf: FPDF, x: float, top: float, width: float, height: float, text: str, align: str = "L") -> None:
    """One line of text in the box (x, top, width, height), aligned L / R / C, baseline near the box's foot."""
    if align != "L":
        free = width - _width(pdf, text)
        x += free if align == "R" else free / 2
    pdf.text(x, top + height * 0.78, text)


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Greedy word wrap at ``width`` with the current font (linear: fpdf2's own multi_cell line breaking
    re-measures the line at every character, which made one report cost over a second)."""
    space = _width(pdf, " ")
    lines = []
    for para in text.split("\n"):
        line, used = "", 0.0
        for word in para.split(" "):
            w = _width(pdf, word)
            if line and used + space + w > width:
                lines.append(line)
                line, used = word, w
            else:
                line, used = (f"{line} {word}", used + space + w) if line else (word, w)
        lines.append(line)
    return lines


def _paragraph(pdf: FPDF, text: str, size: float, style: str = "", colour=INK, indent: float = 0.0) -> None:
    pdf.set_font(FONT, style=style, size=size)
    pdf.set_text_color(*colour)
    height = size * 0.45
    for line in _wrap(pdf, _pdf_text(text), pdf.epw - indent):
        if pdf.will_page_break(height):
            pdf.add_page()
        _put(pdf, pdf.l_margin + indent, pdf.get_y(), pdf.epw - indent, height, line)
        pdf.set_xy(pdf.l_margin, pdf.get_y() + height)


def _col_widths(rows: list[list[Cell]], width: float, n: int) -> list[float]:
    """Column widths from the longest text per column (first column at least 30%)."""
    longest = [4.0] * n
    for r in rows:
        col = 0
        for c in r:
            if c.colspan == 1 and col < n:
                size = max([len(c.text)] + [len(x) * 0.8 for x in c.notes])
                longest[col] = max(longest[col], min(size, 60))
            col += c.colspan
    total = sum(longest)
    widths = [width * x / total for x in longest]
    if n > 1 and widths[0] < width * 0.3:
        rest = (width * 0.7) / sum(widths[1:])
        widths = [width * 0.3] + [w * rest for w in widths[1:]]
    return widths


MAIN_PT, NOTE_PT, PAD = 8.0, 6.5, 1.0


def _table(pdf: FPDF, block: Block, colours: dict) -> None:
    """A table: cells placed on a grid (colspan, rowspan), rows broken across pages with the heading rows
    repeated; each cell filled with its CSS class's colour."""
    rows = [r for r in block.rows if r]
    if not rows:
        return
    legend = "legend" in block.classes
    # Grid placement: (row, first column, cell), honouring cells that span rows from above.
    placed, taken = [], set()
    for ri, r in enumerate(rows):
        col = 0
        for c in r:
            while (ri, col) in taken:
                col += 1
            placed.append((ri, col, c))
            for dr in range(c.rowspan):
                for dc in range(c.colspan):
                    taken.add((ri + dr, col + dc))
            col += c.colspan
    n_cols = max(col + c.colspan for _, col, c in placed)
    width = pdf.epw if not legend else min(pdf.epw, 14 + 19 * (n_cols - 1))
    widths = _col_widths(rows, width, n_cols) if not legend else [width / n_cols] * n_cols
    xs = [pdf.l_margin + sum(widths[:i]) for i in range(n_cols + 1)]

    def lines_of(c: Cell, w: float) -> list[tuple[str, float, str]]:
        style = "B" if c.header and "sub" not in c.classes else ""
        pdf.set_font(FONT, style=style, size=MAIN_PT if not legend else 7)
        out = [(t, MAIN_PT if not legend else 7, style) for t in _wrap(pdf, _pdf_text(c.text), w - 2 * PAD)]
        pdf.set_font(FONT, size=NOTE_PT)
        for note in c.notes:
            out += [(t, NOTE_PT, "") for t in _wrap(pdf, _pdf_text(note), w - 2 * PAD)]
        return out

    laid = [(ri, col, c, lines_of(c, xs[col + c.colspan] - xs[col])) for ri, col, c in placed]
    heights = [0.0] * len(rows)
    for ri, _, c, lines in laid:
        if c.rowspan == 1:
            heights[ri] = max(heights[ri], sum(size * 0.42 for _, size, _ in lines) + 2 * PAD)
    heading_rows = 0
    for r in rows:
        if all(c.header for c in r):
            heading_rows += 1
        else:
            break

    def draw_row(ri: int, y: float) -> None:
        for rj, col, c, lines in laid:
            if rj != ri:
                continue
            x, w = xs[col], xs[col + c.colspan] - xs[col]
            h = sum(heights[ri:ri + c.rowspan])
            fill, ink = None, None
            for cls in sorted(c.classes):
                bg, fg = colours.get(cls, (None, None))
                fill, ink = bg or fill, fg or ink
            if c.header and fill is None:
                fill = HEAD
            if "unreliable-mark" in c.classes:
                ink = (138, 90, 0)
            elif "suppressed" in c.classes:
                ink = ink or MUTED
            if fill:
                pdf.set_fill_color(*fill)
            pdf.set_draw_color(*RULE)
            if legend:
                if fill:
                    pdf.rect(x, y, w, h, style="F")
            else:
                pdf.rect(x, y, w, h, style="DF" if fill else "D")
            if "unreliable-mark" in c.classes:  # keeps its colour; marked by a dashed outline
                pdf.set_draw_color(138, 90, 0)
                pdf.set_dash_pattern(dash=0.8, gap=0.6)
                pdf.rect(x + 0.6, y + 0.6, w - 1.2, h - 1.2, style="D")
                pdf.set_dash_pattern()
            align = "R" if ("num" in c.classes or (c.header and "sub" in c.classes)) else \
                ("C" if "year" in c.classes or legend else "L")
            ty = y + PAD
            for text, size, style in lines:
                pdf.set_font(FONT, style=style, size=size)
                pdf.set_text_color(*(ink or (INK if size == MAIN_PT or legend else MUTED)))
                _put(pdf, x + PAD, ty, w - 2 * PAD, size * 0.42, text, align)
                ty += size * 0.42

    y = pdf.get_y()
    head_h = sum(heights[:heading_rows])
    for ri in range(len(rows)):
        if ri >= heading_rows and y + heights[ri] > pdf.page_break_trigger:
            pdf.add_page()
            y = pdf.get_y()
            for hi in range(heading_rows):  # repeat the heading rows on the new page
                draw_row(hi, y)
                y += heights[hi]
        elif ri == 0 and y + head_h + (heights[heading_rows] if heading_rows < len(rows) else 0) > pdf.page_break_trigger:
            pdf.add_page()
            y = pdf.get_y()
        draw_row(ri, y)
        y += heights[ri]
    pdf.set_xy(pdf.l_margin, y + 2.5)


def render_pdf(html: str, pdf_path: Path) -> Path:
    """Lay out one rendered report (our templates' HTML) as an A4 PDF at ``pdf_path``."""
    blocks = html_blocks(html)
    colours = _class_colours()
    pdf = _Pdf(orientation="portrait", unit="mm", format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_margins(12, 14, 12)
    pdf.set_auto_page_break(True, margin=14)
    pdf.set_creator("rom_pipeline reports")
    pdf.set_title(_pdf_text(next((b.text for b in blocks if b.kind == "h1"), "Rapport")))
    footer = next((b.text for b in blocks if b.kind == "small" and b.text.startswith("Automatisch")), "")
    pdf.footer_text = footer.split(";")[0][:120]
    pdf.add_page()
    for b in blocks:
        if b.kind == "table":
            _table(pdf, b, colours)
            continue
        if b.kind == "img":
            if pdf.will_page_break(60):
                pdf.add_page()
            pdf.image(io.BytesIO(b.svg), w=pdf.epw)
            pdf.ln(1)
            continue
        size, style, colour, before = {"h1": (18, "B", ACCENT, 1), "h2": (12.5, "B", ACCENT, 4),
                                       "h3": (10, "B", INK, 2.5), "p": (8.5, "", INK, 0.8),
                                       "li": (8.5, "", INK, 0.5), "caption": (7.5, "", MUTED, 0),
                                       "small": (7.5, "", MUTED, 0.8)}.get(b.kind, (8.5, "", INK, 0.8))
        if b.kind in ("h2", "h3") and pdf.will_page_break(30):
            pdf.add_page()
        pdf.ln(before)
        _paragraph(pdf, ("• " + b.text) if b.kind == "li" else b.text, size, style, colour,
                   indent=3 if b.kind == "li" else 0)
        if b.kind == "h2":
            pdf.set_draw_color(*RULE)
            pdf.line(pdf.l_margin, pdf.get_y() + 0.5, pdf.l_margin + pdf.epw, pdf.get_y() + 0.5)
            pdf.ln(1.5)
    pdf_path = Path(pdf_path)
    pdf.output(str(pdf_path))
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        raise PdfError(f"no PDF written to {pdf_path}")
    return pdf_path
