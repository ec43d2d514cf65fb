"""What the device check found: one flat row per check or figure, the table printed last, and the
files under --out (gpu.csv, gpu.json, gpu.md), rewritten after every part so that a kill keeps
what was finished.

A row's status is "ok", "FAILED" (an error, or a result out of tolerance: the exit code is 1) or
"skipped" (not applicable here, e.g. timm not installed). Speed targets are lines of the table with
a goal; missing one is reported as MISSED, not as a failure.
"""

import json
import math
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Target, md_table, to_csv, write_index
from vocab.atomic import write_text_atomic

OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"


@dataclass(frozen=True)
class Line:
    """One line of the table printed last."""

    part: str
    what: str
    measured: str
    goal: str = ""
    status: str = ""


def error_text(err: BaseException | str) -> str:
    """One line: the exception's type and first line, and where in our code it was raised."""
    if isinstance(err, str):
        return err
    first = (str(err).strip().splitlines() or [""])[0][:300]
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "site-packages" not in f.filename]
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {first}{where}"


class Report:
    def __init__(self, environment: dict, plan: dict):
        self.environment, self.plan = environment, plan
        self.rows: list[dict] = []
        self.lines: list[Line] = []
        self.part_seconds: dict[str, float] = {}

    # --- recording ---

    def add(self, part: str, check: str, status: str = OK, **fields) -> dict:
        row = {"part": part, "check": check, "status": status, **fields}
        row.setdefault("device", self.environment.get("device"))
        row.setdefault("torch_version", self.environment.get("torch_version"))
        self.rows.append(row)
        return row

    def check(self, part: str, check: str, ok: bool, **fields) -> dict:
        """A pass/fail check; `fields` say what was compared (errors, tolerances, counts)."""
        return self.add(part, check, OK if ok else FAILED, **fields)

    def fail(self, part: str, check: str, err: BaseException | str, **fields) -> dict:
        text = error_text(err)
        print(f"  FAILED {check}: {text}", flush=True)
        return self.add(part, check, FAILED, error=text, **fields)

    def skip(self, part: str, check: str, why: str, **fields) -> dict:
        print(f"  skipped {check}: {why}", flush=True)
        return self.add(part, check, SKIPPED, note=why, **fields)

    def target(self, part: str, target: Target) -> None:
        note = f" ({target.note})" if target.note else ""
        self.lines.append(Line(part, target.name + note, target.value_text(), target.goal_text(), target.verdict()))
        self.add(part, target.name, OK if target.value is not None else SKIPPED, value=target.value,
                 goal=target.goal, unit=target.unit, verdict=target.verdict(), note=target.note)  # fmt: skip

    def line(self, part: str, what: str, measured: str, goal: str = "", status: str = "reported") -> None:
        self.lines.append(Line(part, what, measured, goal, status))

    def part_done(self, part: str, seconds: float, budget_s: float | None) -> None:
        self.part_seconds[part] = seconds
        self.add(part, "part time", OK, seconds=seconds, budget_s=budget_s)

    # --- reading ---

    def failures(self, part: str | None = None) -> list[dict]:
        return [r for r in self.rows if r["status"] == FAILED and (part is None or r["part"] == part)]

    def summary_lines(self) -> list[Line]:
        """Per part: how many checks passed and how long it took, then its figures and targets."""
        out = []
        for part, seconds in self.part_seconds.items():
            rows = [r for r in self.rows if r["part"] == part and r["check"] != "part time"]
            failed = [r for r in rows if r["status"] == FAILED]
            ran = [r for r in rows if r["status"] != SKIPPED]
            budget = next((r["budget_s"] for r in self.rows if r["part"] == part and r["check"] == "part time"), None)
            goal = f"<= {budget:.0f} s" if budget else ""
            first = f"; first: {failed[0]['check']}" if failed else ""
            measured = f"{len(ran) - len(failed)}/{len(ran)} ok{first}, {seconds:.0f} s"
            out.append(Line(part, "checks", measured, goal, FAILED if failed else OK))
            out += [line for line in self.lines if line.part == part]
        return out

    def table(self) -> str:
        header = ["part", "check", "measured", "goal", "status"]
        lines = [[x.part, x.what, x.measured, x.goal, x.status] for x in self.summary_lines()]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
        rows = [header, ["-" * w for w in widths], *lines]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)

    # --- writing ---

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "gpu.csv", out_dir / "gpu.json", out_dir / "gpu.md"]
        write_text_atomic(paths[0], to_csv([{k: _plain(v) for k, v in r.items()} for r in self.rows]))
        document = {"environment": self.environment, "plan": self.plan, "part_seconds": self.part_seconds,
                    "failures": len(self.failures()), "summary": [line.__dict__ for line in self.summary_lines()],
                    "rows": self.rows}  # fmt: skip
        write_text_atomic(paths[1], json.dumps(_plain(document), indent=1) + "\n")
        write_text_atomic(paths[2], self.markdown())
        write_index(out_dir)
        return paths

    def markdown(self) -> str:
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items() if v not in (None, ""))
        lines = [[x.part, x.what, x.measured, x.goal, x.status] for x in self.summary_lines()]
        failed = [[r["part"], r["check"], r.get("error", "")] for r in self.failures()]
        parts = ["# Benchmark: gpu (the device check)", "", f"Environment: {env}.", "",
                 md_table(["part", "check", "measured", "goal", "status"], lines), ""]  # fmt: skip
        if failed:
            parts += ["## Failures", "", md_table(["part", "check", "error"], failed), ""]
        parts += ["All rows: `gpu.csv` (flat) and `gpu.json` (with the environment and the plan).", ""]
        return "\n".join(parts)


def _plain(value):
    """JSON- and CSV-safe: NaN/inf as text, tuples as lists, anything else unknown as str."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
