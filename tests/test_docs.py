"""Keep README.md and docs/ honest: run their code, check their links and excerpts.

Every fenced ```python block of README.md and docs/*.md is one of:

- **run**, on its own: fresh globals, the working directory a temporary folder,
  ``XDG_CACHE_HOME`` inside it (so ``hotcache.Cache()`` opens a fresh embedded
  default), ``HOTCACHE_URL`` and ``HOTCACHE_SECRET`` unset. Top-level ``await``
  is allowed. ``redis://localhost:6379`` is rewritten to this session's private
  redis-server, never the machine's; ``redis://127.0.0.1:1`` is left alone (it is
  the docs' deliberately dead address: nothing listens on port 1).
  An expression statement whose trailing comment ends in a Python literal, or in
  ``MISSING``, is asserted equal to it: ``cache.get("k")  # "v"``, and after the
  last ``;`` of the comment, ``cache.incr("n")  # atomic; 1``.
- **an excerpt**, when the line before the fence is ``<!-- excerpt: PATH -->``:
  not run, but it must still be a verbatim part of PATH (indentation aside).
- **skipped**, when the line before the fence is ``<!-- docs-test: skip (why) -->``,
  or when the block needs what the suite cannot give it: a server other than the
  two above (``rediss://``, ``unix://``, any other ``redis://`` address) or a
  placeholder the docs leave undefined (``PLACEHOLDERS``).

The README quickstart must run (``test_quickstart_block_runs``). Every relative
link must name an existing file, and a ``#fragment`` into a markdown file must
name one of its headings. Finally the example backend of docs/architecture.md
must pass the shipped conformance suite (``TestArchitectureDictBackend``).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import re
import tokenize
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import hotcache
from hotcache.backends.offload import AsyncOffload
from hotcache.testing import CacheConformance

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Names some blocks use without defining, to keep an example short.
PLACEHOLDERS = frozenset({"fetch_user"})
LOCAL_REDIS = "redis://localhost:6379"
DEAD_REDIS = "redis://127.0.0.1:1/"
_SERVER_URL = re.compile(r"\b(?:rediss|redis|unix)://[^\s\"')]*")
_MARKER = re.compile(r"<!--\s*(docs-test:\s*skip|excerpt:)\s*(.*?)\s*-->")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class Block:
    """One fenced python block of a markdown file."""

    doc: Path
    line: int  # 1-based line of the block's first code line
    code: str
    marker: str  # "", "skip" or "excerpt"
    argument: str  # the skip reason or the excerpt's path

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def _blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            if lines[i].startswith("```"):  # another language's fence: skip to its end
                i += 1
                while i < len(lines) and not lines[i].startswith("```"):
                    i += 1
            i += 1
            continue
        before = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        marker, argument = "", ""
        if match := _MARKER.fullmatch(before.strip()):
            marker = "excerpt" if match[1] == "excerpt:" else "skip"
            argument = match[2]
        code = "\n".join(lines[start:i]) + "\n"
        found.append(Block(doc, start + 1, code, marker, argument))
        i += 1
    return found


BLOCKS = [block for doc in DOCS for block in _blocks(doc)]


def _why_not_run(block: Block) -> str | None:
    """Return why ``block`` cannot run here, or None if it runs."""
    if block.marker == "skip":
        return block.argument.strip("()") or "marked docs-test: skip"
    for url in _SERVER_URL.findall(block.code):
        if not (url.startswith(LOCAL_REDIS) or url.startswith(DEAD_REDIS)):
            return f"needs a server the suite does not run: {url}"
    names = {node.id for node in ast.walk(_parse(block.code)) if isinstance(node, ast.Name)}
    if names & PLACEHOLDERS:
        return f"uses the placeholder {', '.join(sorted(names & PLACEHOLDERS))}"
    return None


def _parse(code: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(code, "<docs>", "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


# -- literal comments become checks --------------------------------------------------


def _comments(code: str) -> dict[int, str]:
    """Return the trailing comment text of each line that has one."""
    out = {}
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            out[token.start[0]] = token.string.lstrip("#").strip()
    return out


def _expected(comment: str) -> ast.expr | None:
    """Return the expression a comment promises, if it ends in a literal or MISSING."""
    tail = comment.rsplit(";", 1)[-1].strip()
    if tail in {"MISSING", "hotcache.MISSING"}:
        return ast.Name("__docs_missing__", ast.Load())
    try:
        ast.literal_eval(tail)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return ast.parse(tail, mode="eval").body


class _Checks(ast.NodeTransformer):
    """Turn ``expr  # literal`` statements into calls of ``__docs_check__``."""

    def __init__(self, code: str) -> None:
        self.comments = _comments(code)
        self.lines = code.splitlines()

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                setattr(node, field, self._rewrite(body))
        return node

    def _rewrite(self, body: list[ast.stmt]) -> list[ast.stmt]:
        last_on_line = {stmt.end_lineno: stmt for stmt in body}
        out: list[ast.stmt] = []
        for stmt in body:
            line = stmt.end_lineno or stmt.lineno
            comment = self.comments.get(line)
            expected = _expected(comment) if comment else None
            if isinstance(stmt, ast.Expr) and expected is not None and last_on_line[line] is stmt:
                source = ast.get_source_segment("\n".join(self.lines), stmt.value) or "?"
                call = ast.Call(
                    ast.Name("__docs_check__", ast.Load()),
                    [stmt.value, expected, ast.Constant(source), ast.Constant(comment)],
                    [],
                )
                stmt = ast.copy_location(ast.Expr(call), stmt)
            out.append(stmt)
        return out


def _check(actual: Any, expected: Any, source: str, comment: str) -> None:
    if expected is hotcache.MISSING or expected is None or isinstance(expected, bool):
        ok = actual is expected
    else:
        ok = type(actual) is type(expected) and actual == expected
    assert ok, f"{source} returned {actual!r}; the comment says # {comment}"


def _run(block: Block, code: str) -> None:
    tree = _Checks(code).visit(_parse(code))
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, block.line - 1)  # tracebacks point into the document
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    compiled = compile(tree, str(block.doc), "exec", flags=flags, dont_inherit=True)
    namespace: dict[str, Any] = {
        "__name__": "__docs__",
        "__docs_check__": _check,
        "__docs_missing__": hotcache.MISSING,
    }
    try:
        result = eval(compiled, namespace)
        if compiled.co_flags & inspect.CO_COROUTINE:
            asyncio.run(result)
    finally:
        for value in namespace.values():
            if isinstance(value, hotcache.Cache):
                value.close()


# -- the tests ------------------------------------------------------------------


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HOTCACHE_URL", raising=False)
    monkeypatch.delenv("HOTCACHE_SECRET", raising=False)
    return tmp_path


RUNNABLE = [b for b in BLOCKS if b.marker != "excerpt" and _why_not_run(b) is None]


def test_blocks_that_do_not_run_say_why() -> None:
    """A block left out of the runs must carry a reason (a marker, a server, a placeholder)."""
    for block in BLOCKS:
        if block.marker != "excerpt" and block not in RUNNABLE:
            assert _why_not_run(block), block.name


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.name)
def test_block_runs(block: Block, docs_env: Path, request: pytest.FixtureRequest) -> None:
    code = block.code
    if LOCAL_REDIS in code:
        request.getfixturevalue("redis_url")  # an empty database for this block
        port = request.getfixturevalue("redis_server").port
        code = code.replace(LOCAL_REDIS, f"redis://127.0.0.1:{port}")
    _run(block, code)


def test_quickstart_block_runs() -> None:
    quickstart = [b for b in BLOCKS if b.doc.name == "README.md" and "hotcache.Cache()" in b.code]
    assert quickstart, "README.md has no quickstart block using hotcache.Cache()"
    for block in quickstart:
        assert _why_not_run(block) is None, f"{block.name} would be skipped"
        assert _Checks(block.code).comments, "the quickstart's comments are its assertions"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.marker == "excerpt"], ids=lambda b: b.name
)
def test_excerpt_is_verbatim(block: Block) -> None:
    source = (ROOT / block.argument).read_text(encoding="utf-8").splitlines()
    wanted = block.code.rstrip("\n").splitlines()
    for start, line in enumerate(source):
        if not line.endswith(wanted[0]) or line[: -len(wanted[0])].strip():
            continue
        indent = line[: -len(wanted[0])]
        window = source[start : start + len(wanted)]
        if len(window) == len(wanted) and all(
            got.rstrip() == (indent + want if want.strip() else "")
            for got, want in zip(window, wanted, strict=True)
        ):
            return
    pytest.fail(f"{block.name}: the excerpt is no longer part of {block.argument}; update it")


def _slug(heading: str) -> str:
    """Return GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def _anchors(doc: Path) -> frozenset[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    return frozenset(_slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, flags=re.M))


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for line in text.splitlines():
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{target}: no such file")
            elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
                broken.append(f"{target}: no heading #{fragment} in {file.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


# -- the architecture page's example backend passes the conformance suite ----------


@cache
def _dict_backend_class() -> type:
    """Return ``DictBackend`` as docs/architecture.md defines it (definitions only)."""
    block = next(
        b for b in BLOCKS if b.doc.name == "architecture.md" and "class DictBackend" in b.code
    )
    tree = _parse(block.code)
    kept = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.Assign)
    tree.body = [node for node in tree.body if isinstance(node, kept)]
    tree.body = [
        node
        for node in tree.body
        if not isinstance(node, ast.Assign)
        or all(isinstance(t, ast.Name) and t.id.startswith("_") for t in node.targets)
    ]
    namespace: dict[str, Any] = {"__name__": "docs_architecture"}
    exec(compile(tree, str(block.doc), "exec"), namespace)
    backend: type = namespace["DictBackend"]
    return backend


class TestArchitectureDictBackend(CacheConformance):
    """The suite, over the third-party backend the architecture page shows."""

    stores_by_url: dict[str, Any] = {}  # one store per test's URL

    @pytest.fixture
    def cache_url(self) -> str:
        return f"dict://{uuid.uuid4().hex}"

    def build(self, face: str, url: str, **options: Any) -> hotcache.Cache | hotcache.AsyncCache:
        backend = self.stores_by_url.setdefault(url, _dict_backend_class()())
        if face == "async":
            return hotcache.AsyncCache(backend=AsyncOffload(backend, blocking=False), **options)
        return hotcache.Cache(backend=backend, **options)
