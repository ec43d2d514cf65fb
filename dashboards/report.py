"""`tokensweep report`'s text: a sweep's configurations and every difference between them, as
Markdown, LaTeX (escaped; a document that compiles with a base TeX install) or CSV (one row per
difference). Nothing is left out: every configuration, every pair (or each against a baseline).
"""

import csv
import io
from dataclasses import dataclass

import pyarrow as pa

from vocab.values import as_text
from dashboards.configurations import BENCH, BENCH_METHOD, DEVICE_HOURS
from dashboards.differences import (METRICS, THROUGHPUT, TOP1, Config, PairDifference,
                                    adjustment_note, all_differences, sweep_configurations)  # fmt: skip
from dashboards.errors import InputError
from dashboards.runs import label, param_columns, sorted_rows
from dashboards.stats import ADJUSTMENTS
from dashboards.style import SIZE_METRICS, human, with_interval

FORMATS = ("md", "latex", "csv")
CSV_COLUMNS = ("metric", "a", "b", "difference", "ci_low", "ci_high", "resolved", "method", "adjustment")
DIFF_HEADERS = ("metric", "a − b", "difference", "95% interval", "resolved", "method")


@dataclass(frozen=True)
class Report:
    experiment: str
    configs: list[Config]
    differences: list[PairDifference]
    adjust: str
    baseline: str | None

    @property
    def benched(self) -> bool:
        return any(_benched(c.summaries[THROUGHPUT]) for c in self.configs)

    @property
    def labels(self) -> dict[str, str]:
        """Each metric by vocab's label of the figure reported: the words of the dashboard's axes."""
        return {TOP1: label(TOP1), THROUGHPUT: label(BENCH if self.benched else THROUGHPUT)}

    @property
    def config_headers(self) -> tuple[str, ...]:
        return ("configuration", "n", self.labels[TOP1], self.labels[THROUGHPUT], "params", "embedding params", "FLOPs",
                label(DEVICE_HOURS))  # fmt: skip

    @property
    def throughput_figure(self) -> str:
        return "the bench's figure (measured alone; interval of its median)" if self.benched else "in-trial, over seeds"

    def notes(self) -> list[str]:
        per_metric = len(self.differences) // len(METRICS)
        against = f"each against {self.baseline}" if self.baseline else "every pair"
        adjusted = adjustment_note(per_metric, self.adjust)
        return [
            f"{len(self.configs)} configurations (finished runs; seeds grouped by configuration), {against}.",
            f"{self.labels[THROUGHPUT]}: {self.throughput_figure}.",
            f"{label(DEVICE_HOURS)}: summed over the configuration's seeds (each trial's wall time x the devices it held).",
            "A difference is resolved when its 95% interval excludes 0 (top-1 and in-trial images/sec: Welch over "
            "seeds; bench images/sec: paired t over the bench's repeats)" + (f"; {adjusted}." if adjusted else "."),
        ]


def build_report(runs: pa.Table, experiment: str, baseline: str | None = None, adjust: str = "none") -> Report:
    configs = sweep_configurations(sorted_rows(runs), param_columns(runs.schema))
    if not configs:
        raise InputError(f"no finished runs in {experiment!r}: nothing to report (see tokensweep dashboard {experiment})")
    return Report(experiment, configs, all_differences(configs, baseline, adjust), adjust, baseline)


def check_options(fmt: str, adjust: str) -> None:
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if adjust not in ADJUSTMENTS:
        raise InputError(f"--adjust must be one of {', '.join(ADJUSTMENTS)}, got {adjust!r}")


def _benched(summary) -> bool:
    return summary is not None and summary.method == BENCH_METHOD


def config_cells(config: Config) -> list[str]:
    throughput = config.summaries[THROUGHPUT]
    return [config.name, str(config.n), with_interval(config.summaries[TOP1], TOP1),
            with_interval(throughput, BENCH if _benched(throughput) else THROUGHPUT),
            *(human(config.mean(m), m) for m in SIZE_METRICS), human(config.total(DEVICE_HOURS), DEVICE_HOURS)]  # fmt: skip


def _number(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if metric == TOP1 else f"{value:+,.0f}"


def verdict(pair: PairDifference) -> str:
    return {True: "yes", False: "no", None: "–"}[pair.difference.resolved]


def difference_cells(pair: PairDifference, labels: dict[str, str]) -> list[str]:
    d = pair.difference
    interval = "–" if d.low is None else f"[{_number(d.low, pair.metric)}, {_number(d.high, pair.metric)}]"
    return [labels[pair.metric], f"{pair.a} − {pair.b}", _number(d.mean, pair.metric), interval, verdict(pair),
            d.method]  # fmt: skip


def _markdown_table(headers, rows) -> list[str]:
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def markdown(report: Report) -> str:
    lines = [f"# {report.experiment}: configurations and their differences", "", *report.notes(), "",
             "## Configurations", "", *_markdown_table(report.config_headers, [config_cells(c) for c in report.configs]), "",
             "## Differences", ""]  # fmt: skip
    rows = [difference_cells(p, report.labels) for p in report.differences]
    lines += _markdown_table(DIFF_HEADERS, rows) if rows else ["(one configuration: no difference)"]
    return "\n".join(lines) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "−": "$-$",
                 "–": "--", "<": r"\textless{}", ">": r"\textgreater{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally; anything else outside ASCII becomes '?' (a base TeX has no font for it)."""
    escaped = "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return escaped.encode("ascii", "replace").decode("ascii")


def _latex_table(headers, rows, columns: str) -> list[str]:
    line = lambda cells: " & ".join(latex_escape(c) for c in cells) + r" \\"  # noqa: E731
    return [rf"\begin{{longtable}}{{{columns}}}", r"\hline", line(headers), r"\hline", r"\endhead",
            *(line(r) for r in rows), r"\hline", r"\end{longtable}"]  # fmt: skip


def latex(report: Report) -> str:
    lines = [r"\documentclass[landscape]{article}", r"\usepackage{longtable}", r"\setlength{\textwidth}{24cm}",
             r"\setlength{\oddsidemargin}{-1.5cm}", r"\begin{document}", r"\small",
             rf"\section*{{{latex_escape(report.experiment)}: configurations and their differences}}",
             *(latex_escape(n) + "\n" for n in report.notes()), r"\subsection*{Configurations}",
             *_latex_table(report.config_headers, [config_cells(c) for c in report.configs], "lrllrrrr"),
             r"\subsection*{Differences}"]  # fmt: skip
    rows = [difference_cells(p, report.labels) for p in report.differences]
    lines += _latex_table(DIFF_HEADERS, rows, "llrrll") if rows else ["One configuration: no difference."]
    return "\n".join([*lines, r"\end{document}"]) + "\n"


def _csv_value(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else as_text(value)


def csv_text(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for pair in report.differences:
        row = {**pair.as_dict(), "adjustment": report.adjust}
        writer.writerow([_csv_value(row[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


RENDERERS = {"md": markdown, "latex": latex, "csv": csv_text}


def render(report: Report, fmt: str = "md") -> str:
    return RENDERERS[fmt](report)
