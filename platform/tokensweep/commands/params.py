"""`tokensweep params`: the paper's parameter counts (Tables 1, 6, 7) beside the counts of what we build."""

import argparse

from dashboards.paper import TABLE_1, TABLE_6, TABLE_7

MODEL_OF_EMBEDDING = {"patch": "vit_s_patch", "conv": "vit_s_conv", "supertoken": "vit_s_supertoken"}
MODEL_ARGS = ("conv_depth", "extra_conv", "cluster_iters")


def register(sub) -> None:
    p = sub.add_parser(
        "params",
        help="the paper's parameter counts beside measured ones",
        description="Print the paper's Table 1 (embedding parameters) and the model sizes of Tables 6 and 7, "
        "each beside the trainable-parameter count of the model tokensweep builds for that row (100 classes, 224 px).",
    )
    p.set_defaults(func=run)


def model_for(row) -> tuple[str, dict]:
    """The registered model and overrides that a paper row describes."""
    name = MODEL_OF_EMBEDDING[row.match["embedding"]]
    overrides = {k: row.match[k] for k in MODEL_ARGS if k in row.match and name == "vit_s_supertoken"}
    return name, overrides


def measured_rows(table, metric: str) -> list[tuple[str, float, int]]:
    from trials import create_model
    from trials.measure import count_params

    rows = []
    for row in table.rows:
        name, overrides = model_for(row)
        model = create_model(name, **overrides)
        count = count_params(model.embed if metric == "embed_params" else model)
        rows.append((row.label, row.values[metric], count))
    return rows


def format_table(title: str, rows: list[tuple[str, float, int]]) -> str:
    width = max(len(label) for label, _, _ in rows)
    lines = [title, f"  {'':<{width}}  {'paper':>8}  {'measured':>11}  {'ratio':>6}"]
    for label, paper, measured in rows:
        lines.append(f"  {label:<{width}}  {paper / 1e6:>7.2f}M  {measured:>11,}  {measured / paper:>6.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(format_table(f"Table {TABLE_1.number} - {TABLE_1.title}", measured_rows(TABLE_1, "embed_params")))
    print(f"  note: {TABLE_1.note}")
    print(
        "  (EarlyConv: Table 4 prints widths 96-192-384-384; Table 1's 1.00M is EarlyConv's 48-96-192-384 "
        "stem + 1x1 conv, which we build.)"
    )
    for table in (TABLE_6, TABLE_7):
        print()
        print(format_table(f"Table {table.number} - {table.title}: model parameters", measured_rows(table, "params")))
    return 0
