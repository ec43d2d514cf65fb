"""Reading a spec: the TOML text, `--set` overrides, and where each key came from (`file:line`)."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from pathlib import Path

from tokensweep.errors import SpecError
from tokensweep.spec.context import SpecContext
from tokensweep.spec.model import SweepSpec
from tokensweep.spec.validate import build_spec

# `--smoke`, the platform's half: one CPU per trial, no GPU, a short search. The trials' half, the
# tiny recipe, is trials.SMOKE; both apply before --set, so --set still changes anything.
SMOKE_RESOURCES = {"cpus": 1, "gpus": 0}
SMOKE_NUM_SAMPLES = 3
EXTENDS = "extends"  # a top-level key: the spec file this one is laid over
MAX_TOML_DEPTH = 32  # arrays and tables within each other: a spec needs 4; Python's own parser stops near 500

_HEADER_AOT = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"""^("(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[A-Za-z0-9_.-]+))\s*=""")


def _norm_table(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def key_lines(text: str) -> dict[str, int]:
    """'table.key' -> 1-based line, for simple `key = value` lines and table headers (best effort)."""
    lines: dict[str, int] = {}
    table = ""
    aot: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _HEADER_AOT.match(line):
            name = _norm_table(m[1])
            index = aot.get(name, 0)
            aot[name] = index + 1
            table = f"{name}[{index}]"
            lines.setdefault(table, number)
            continue
        if m := _HEADER.match(line):
            table = _norm_table(m[1])
            lines.setdefault(table, number)
            continue
        if m := _KEY.match(line):
            key = m["dq"] if m["dq"] is not None else m["sq"] if m["sq"] is not None else m["bare"]
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


class _Locator:
    """Turns a dotted key into 'file:line: key' (or '--set key') for error messages: the line of the
    file that set the key, the spec's own or a file it extends."""

    def __init__(self, source: str, files: list[tuple[str, str]], set_keys: dict[str, str]):
        self.source = source
        self.lines = {}  # dotted key -> 'file:line'; the files come base first, so the last to set a key wins
        for name, text in files:
            self.lines.update({key: f"{name}:{line}" for key, line in key_lines(text).items()})
        self.set_keys = set_keys  # dotted key -> the --set argument

    def where(self, key: str) -> str:
        probe = key
        while True:
            if probe in self.set_keys:
                return f"--set {self.set_keys[probe]}: {key}"
            if probe in self.lines:
                return f"{self.lines[probe]}: {key}"
            if "." not in probe:
                return f"{self.source}: {key}"
            probe = probe.rsplit(".", 1)[0]

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.where(key)} {message}")


# --- reading ---------------------------------------------------------------------------------


def load_toml(text: str, source: str) -> dict:
    """Parse TOML text read from `source`: malformed or absurdly nested text is a one-line SpecError."""
    try:
        return _loads(text, source)
    except tomllib.TOMLDecodeError as err:
        # tomllib says "... (at line 3, column 7)": put the location first, like every other error
        msg = str(err)
        if m := re.search(r"\(at line (\d+), column \d+\)$", msg):
            raise SpecError(f"{source}:{m[1]}: malformed TOML: {msg[: m.start()].strip()}") from None
        raise SpecError(f"{source}: malformed TOML: {msg}") from None


def _loads(text: str, source: str) -> dict:
    """tomllib.loads, nesting deeper than MAX_TOML_DEPTH a one-line SpecError (TOMLDecodeError passes)."""
    too_deep = SpecError(f"{source}: TOML nested more than {MAX_TOML_DEPTH} levels deep (arrays or tables "
                         "within each other); specs and configs nest 4 deep at most")  # fmt: skip
    try:
        doc = tomllib.loads(text)
    except RecursionError:  # tomllib recurses once per level
        raise too_deep from None
    if _depth(doc) > MAX_TOML_DEPTH:  # parsed, but deep enough to exhaust the stack of whatever walks it next
        raise too_deep
    return doc


def _depth(value) -> int:
    """How deep arrays and tables nest in a parsed TOML value (without recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_value(text: str, source: str = "--set value"):
    """A --set value as TOML (2, 1e-3, true, [1, 2], "x"); anything TOML can't parse is a string."""
    try:
        return _loads(f"v = {text}", source)["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(doc: dict, assignment: str) -> str:
    """Apply one `--set a.b.c=value` to the parsed document; returns the dotted key."""
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SpecError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. trial.epochs=2")
    parts = key.split(".")
    node = doc
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if isinstance(child, list) and part == "variants":
            raise SpecError(f"--set {assignment}: [[variants]] entries cannot be set from the command line")
        if not isinstance(child, dict):
            raise SpecError(f"--set {assignment}: {'.'.join(parts[: depth + 1])} is not a table")
        node = child
    node[parts[-1]] = parse_value(value.strip(), f"--set {key}")
    return key


def read_spec_text(path: str | os.PathLike) -> str:
    p = Path(path)
    if not p.is_file():
        hint = ""
        if not p.suffix and Path(f"{p}.toml").is_file():
            hint = f" (did you mean {p}.toml?)"
        raise SpecError(f"sweep spec {str(path)!r} does not exist or is not a file{hint}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read sweep spec {str(path)!r}: {err}") from None


def with_bases(doc: dict, text: str, source: str, chain: tuple[str, ...] = ()) -> tuple[dict, list[tuple[str, str]]]:
    """The document with the file its `extends` names laid under it (tables merged key by key, arrays
    replaced), recursively; and the (source, text) of every file read, base first."""
    if EXTENDS not in doc:
        return doc, [(source, text)]
    name = doc.pop(EXTENDS)
    line = key_lines(text).get(EXTENDS)
    at = f"{source}:{line}: {EXTENDS}" if line else f"{source}: {EXTENDS}"
    if not isinstance(name, str) or not name:
        raise SpecError(f'{at} must be the path of a spec file, relative to this one, e.g. "paper-recipe.toml", got {name!r}')
    path = (Path(source).parent if source != "<string>" else Path.cwd()) / name
    chain = (*chain, source)
    if any(_same_file(path, earlier) for earlier in chain):
        raise SpecError(f"{at} {name!r} makes a cycle: {' -> '.join([*chain, str(path)])}; a spec may extend only files that do not extend it")
    if not path.is_file():
        raise SpecError(f"{at} {name!r} does not exist or is not a file (looked for {path}: the path is relative to the spec's folder)")
    base_text = read_spec_text(path)
    base, files = with_bases(load_toml(base_text, str(path)), base_text, str(path), chain)
    return _laid_over(base, doc), [*files, (source, text)]


def _same_file(path: Path, source: str) -> bool:
    return source != "<string>" and os.path.realpath(path) == os.path.realpath(source)


def _laid_over(base: dict, top: dict) -> dict:
    """`top`'s keys laid over `base`: a table in both merged key by key, anything else (arrays too) replaced."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _laid_over(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_spec(path: str | os.PathLike, overrides: typing.Sequence[str] = (), **options) -> SweepSpec:
    """Read, override and validate a sweep spec file; `options` as parse_spec takes them."""
    return parse_spec(read_spec_text(path), str(path), overrides, **options)


def apply_smoke(doc: dict, flag: bool) -> bool:
    """Shrink the document to the smoke preset; return whether the sweep is a smoke sweep.

    `[sweep] smoke = true`: the spec is written on top of the preset (its [trial] values win).
    `--smoke` on any other spec: the preset wins over its [trial] (a paper spec runs tiny), and
    its resources and search budget shrink too. The data set is not the preset's to choose: the
    spec's data stays where a path is given, else the trials read generated data (resolve_data).
    """
    from trials import SMOKE

    preset = {k: v for k, v in SMOKE.items() if k != "dataset"}
    trial = doc.get("trial") if isinstance(doc.get("trial"), dict) else {}
    if _declares_smoke(doc):
        doc["trial"] = {**preset, **trial}
        return True
    if not flag:
        return False
    doc["trial"] = {**trial, **preset}
    if isinstance(doc.get("resources"), dict) or "resources" not in doc:
        doc["resources"] = {**doc.get("resources", {}), **SMOKE_RESOURCES}
    search = doc.get("search")
    if isinstance(search, dict) and isinstance(search.get("num_samples", 0), int):
        search["num_samples"] = min(search.get("num_samples", SMOKE_NUM_SAMPLES), SMOKE_NUM_SAMPLES)
    return True


def _declares_smoke(doc: dict) -> bool:
    sweep = doc.get("sweep")
    return isinstance(sweep, dict) and sweep.get("smoke") is True


def parse_spec(
    text: str,
    source: str = "<string>",
    overrides: typing.Sequence[str] = (),
    data_dir: str | None = None,
    environ: typing.Mapping[str, str] | None = None,
    smoke: bool = False,
    plugins: typing.Sequence[str] = (),
) -> SweepSpec:
    """The spec in `text` (read from `source`), with the `--set` overrides, validated.

    data_dir: --data-dir; environ: where TOKENSWEEP_DATA is looked up (default os.environ); smoke:
    --smoke; plugins: the --plugin modules (already imported).
    """
    environ = os.environ if environ is None else environ
    doc, files = with_bases(load_toml(text, source), text, source)
    shrunk = smoke and not _declares_smoke(doc)  # --smoke on a full-size spec
    smoke = apply_smoke(doc, smoke)
    set_keys = {apply_set(doc, item): item for item in overrides}
    ctx = SpecContext(doc, _Locator(source, files, set_keys), text, source, tuple(overrides), set_keys, plugins)
    return build_spec(ctx, data_dir, environ, smoke, shrunk)
