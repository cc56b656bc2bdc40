"""Metrics from a payload's output: find the document, keep its numeric leaves.

`OutputFormat.JSON`: the first JSON document in the text (the whole text when it
parses, else the first balanced `{...}`/`[...]` region, because tools such as
fio print warnings before it). `OutputFormat.YAML`: the block YAML that
stress-ng writes with `--yaml FILE` (mappings, `- ` sequences of mappings,
scalars, quotes, `---`/`...` markers); this is the subset those tools emit, not
a general YAML parser (no flow collections, anchors or multi-line scalars).

Every finite numeric leaf becomes a metric named by its dotted path: object
keys joined by `.`, list items by their index (`jobs.0.read.iops`,
`metrics.0.bogo-ops`). Strings, booleans and nulls are not metrics. Stdout is read
first, and stderr only when stdout yields no metric.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ktstr.payloads.defs import OutputFormat
from ktstr.validators import is_number

#: Deeper subtrees are dropped (fio reaches depth 8): a guard against a runaway document.
MAX_DEPTH = 64


def find_json(text: str) -> Any | None:
    """The first JSON document in `text`, or None."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    while start >= 0:
        region = _balanced(text, start)
        if region is not None:
            try:
                return json.loads(region)
            except ValueError:
                pass
        nxt = [i for i in (text.find("{", start + 1), text.find("[", start + 1)) if i >= 0]
        start = min(nxt, default=-1)
    return None


def _balanced(s: str, start: int) -> str | None:
    opener = s[start]
    closer = "}" if opener == "{" else "]"
    depth = 0
    in_string = escape = False
    for i in range(start, len(s)):
        c = s[i]
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return s[start:i + 1]
    return None


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def _scalar(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1].replace("''", "'") if t[0] == "'" else t[1:-1]
    if t in ("", "~", "null"):
        return None
    if t in ("true", "false"):
        return t == "true"
    if _INT.fullmatch(t):
        return int(t)
    if _FLOAT.fullmatch(t):
        return float(t)
    return t


def parse_yaml(text: str) -> Any | None:
    """The first block-YAML document in `text` (see the module doc), or None."""
    raws = text.splitlines()
    starts = [i for i, raw in enumerate(raws) if raw.strip() == "---"]
    if starts:  # what precedes the document's start marker is a banner, not YAML
        raws = raws[starts[0] + 1:]
    lines: list[tuple[int, str]] = []
    for raw in raws:
        stripped = raw.strip()
        if stripped in ("---", "..."):
            break
        if not stripped or stripped.startswith("#"):
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), stripped))
    if not lines:
        return None
    value, _ = _block(lines, 0, lines[0][0])
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    """Parse the node whose lines start at `i` with indentation `indent`."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            rest = lines[i][1][1:].lstrip()
            if not rest:
                i += 1
                if i < len(lines) and lines[i][0] > indent:
                    item, i = _block(lines, i, lines[i][0])
                else:
                    item = None
            elif _key(rest) is not None:
                # "- key: v" opens a mapping whose other keys sit under "key".
                inner = indent + len(lines[i][1]) - len(rest)
                lines[i] = (inner, rest)
                item, i = _block(lines, i, inner)
            else:
                item, i = _scalar(rest), i + 1
            items.append(item)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        kv = _key(lines[i][1])
        if kv is None:
            return mapping or _scalar(lines[i][1]), i + 1
        key, rest = kv
        i += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or
                                 (lines[i][0] == indent and lines[i][1].startswith("-"))):
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def _key(line: str) -> tuple[str, str] | None:
    """`key: value` -> (key, value); None when the line is no mapping entry."""
    if line[:1] in "'\"":
        end = line.find(line[0], 1)
        if end > 0 and line[end + 1:end + 2] == ":":
            return line[1:end], line[end + 2:].strip()
        return None
    m = re.match(r"([^:#]+?):(\s+|$)", line)
    if m is None:
        return None
    return m.group(1).strip(), line[m.end():].strip()


def numeric_leaves(doc: Any) -> dict[str, float]:
    """Every finite number in `doc` by dotted path (see the module doc)."""
    out: dict[str, float] = {}
    _walk(doc, "", 0, out)
    return out


def _walk(node: Any, path: str, depth: int, out: dict[str, float]) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        for k, v in node.items():
            _walk(v, f"{path}.{k}" if path else str(k), depth + 1, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, f"{path}.{i}" if path else str(i), depth + 1, out)
    elif is_number(node) and math.isfinite(node):
        out[path] = float(node)


def parse(fmt: OutputFormat, text: str) -> dict[str, float]:
    """The metrics of one stream under `fmt` (none for EXIT_CODE)."""
    if fmt & OutputFormat.JSON:
        return numeric_leaves(find_json(text))
    if fmt & OutputFormat.YAML:
        return numeric_leaves(parse_yaml(text))
    return {}


def extract(fmt: OutputFormat, stdout: str, stderr: str) -> tuple[dict[str, float], str]:
    """(metrics, stream): stdout's, else stderr's when stdout has none, else ({}, "")."""
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        metrics = parse(fmt, text)
        if metrics:
            return metrics, stream
    return {}, ""
