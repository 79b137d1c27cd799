"""Sphinx extension: the book's pages show code without its glue bookkeeping.

The chapters compute every number of their text and hand it to the text with
myst-nb's ``glue(name, value, display=False)``. Those lines matter to the
build, not to the reader, so the rendered code cells leave them out:
``from myst_nb import glue``, every ``glue(...)`` call, and any ``for``,
``if``/``else`` or ``with`` block that holds nothing else. A cell left with
no code at all loses its input box. The chapters' sources and their Colab
copies keep the lines (the notebooks need them to run).
"""

from __future__ import annotations

import ast
import re

from docutils import nodes

ELSE_LINE = re.compile(r"^\s*else:\s*(#.*)?$")


def _is_bookkeeping(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        function = statement.value.func
        return isinstance(function, ast.Name) and function.id == "glue"
    if isinstance(statement, ast.ImportFrom):
        return statement.module == "myst_nb" and [alias.name for alias in statement.names] == ["glue"]
    if isinstance(statement, (ast.For, ast.If, ast.With)):
        blocks = [statement.body] + ([statement.orelse] if getattr(statement, "orelse", None) else [])
        return all(_is_bookkeeping(s) for block in blocks for s in block)
    return False


def _lines_to_drop(tree: ast.AST, lines: list[str]) -> set[int]:
    """0-based line numbers of the bookkeeping statements (whole blocks where a block is all bookkeeping)."""
    drop: set[int] = set()

    def visit(body):
        for statement in body:
            if _is_bookkeeping(statement):
                drop.update(range(statement.lineno - 1, statement.end_lineno))
                continue
            for block_name in ("body", "orelse", "finalbody"):
                block = getattr(statement, block_name, None)
                if not block or not isinstance(block, list):
                    continue
                if block_name == "orelse" and all(_is_bookkeeping(s) for s in block) and not isinstance(block[0], ast.If):
                    # "else:" and a body of glue lines only: drop the "else:" line too.
                    else_line = block[0].lineno - 2
                    if 0 <= else_line < len(lines) and ELSE_LINE.match(lines[else_line]):
                        drop.update(range(else_line, block[-1].end_lineno))
                        continue
                if all(_is_bookkeeping(s) for s in block):
                    continue  # a body that would be empty: keep it rather than show broken code
                visit(block)

    visit(tree.body)
    return drop


def without_glue(source: str) -> str:
    """``source`` without its glue bookkeeping; unchanged if it is not valid Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.split("\n")
    drop = _lines_to_drop(tree, lines)
    if not drop:
        return source
    kept = [line for number, line in enumerate(lines) if number not in drop]
    # No blank line left at either end, nor two in a row where a glue line stood between them.
    text = "\n".join(kept).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    try:
        ast.parse(text)
    except SyntaxError:
        return source
    return text


def hide_glue(app, doctree, docname):
    for cell_input in list(doctree.findall(lambda n: isinstance(n, nodes.container) and "cell_input" in n["classes"])):
        for block in list(cell_input.findall(nodes.literal_block)):
            source = block.astext()
            shown = without_glue(source)
            if shown == source:
                continue
            if shown.strip():
                block.children = [nodes.Text(shown)]
                block.rawsource = shown
            else:
                cell_input.parent.remove(cell_input)


def setup(app):
    app.connect("doctree-resolved", hide_glue)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
