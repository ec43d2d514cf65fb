"""`tokensweep params`: the paper's parameter counts beside those of what we build, the backbone sizes
beside DeiT's, and every registered embedding's size on every backbone (plugins included)."""

import argparse

from dashboards.paper import TABLE_1, TABLE_6, TABLE_7
from tokensweep.plugins import add_plugin_flag

# DeiT's published sizes (Touvron et al. 2021, Table 1), ImageNet-1k: what `ti` and `b` are built to match
DEIT = {"ti": ("DeiT-Ti", 5.7e6), "b": ("DeiT-B", 86.6e6)}
PAPER_BACKBONE = "s"


def register(sub) -> None:
    p = sub.add_parser(
        "params",
        help="the paper's parameter counts beside measured ones",
        description="Print the paper's Table 1 (embedding parameters) and the model sizes of Tables 6 and 7, "
        "each beside the trainable-parameter count of the model tokensweep builds for that row (100 classes, "
        "224 px); ViT-Ti and ViT-B with the patch embedding (1,000 classes) beside DeiT's published sizes; and "
        "the embedding parameters of every registered embedding (plugins too) on every backbone.",
    )
    add_plugin_flag(p)
    p.set_defaults(func=run)


def model_for(row) -> tuple[str, dict]:
    """The registered model and knob values that a paper row describes (its knobs; other keys describe runs)."""
    from trials.models import model_name, registered_embeddings

    embedding = registered_embeddings()[row.match["embedding"]]
    knobs = {k: row.match[k] for k in row.match if embedding.knob(k) is not None}
    if isinstance(knobs.get("channels"), str):
        knobs["channels"] = tuple(int(c) for c in knobs["channels"].split(","))
    return model_name(PAPER_BACKBONE, embedding.name), knobs


def count(name: str, embed_only: bool = False, **overrides) -> int:
    """Trainable parameters of a model, or of its embedding alone (built without the backbone)."""
    from trials import create_model, resolve_model
    from trials.measure import count_params
    from trials.models.factory import build_embedding

    if embed_only:
        return count_params(build_embedding(resolve_model(name, **overrides)))
    return count_params(create_model(name, **overrides))


def paper_rows(table, metric: str) -> list[tuple[str, float, int]]:
    rows = []
    for row in table.rows:
        name, knobs = model_for(row)
        rows.append((row.label, row.values[metric], count(name, metric == "embed_params", **knobs)))
    return rows


def format_table(title: str, rows: list[tuple[str, float, int]], reference: str = "paper") -> str:
    width = max(len(label) for label, _, _ in rows)
    lines = [title, f"  {'':<{width}}  {reference:>8}  {'measured':>11}  {'ratio':>6}"]
    for label, published, measured in rows:
        lines.append(f"  {label:<{width}}  {published / 1e6:>7.2f}M  {measured:>11,}  {measured / published:>6.3f}")
    return "\n".join(lines)


def embedding_sizes() -> str:
    """Embedding parameters of every registered embedding (its default knobs) on every backbone."""
    from trials.models import BACKBONES, model_name, registered_embeddings

    names = list(registered_embeddings())
    width = max(len(n) for n in names)
    lines = ["Embedding parameters by backbone (default knobs; width: " +
             ", ".join(f"{b} {c.dim}" for b, c in BACKBONES.items()) + ")",
             f"  {'':<{width}}" + "".join(f"  {b:>11}" for b in BACKBONES)]  # fmt: skip
    for emb in names:
        cells = "".join(f"  {count(model_name(b, emb), True):>11,}" for b in BACKBONES)
        lines.append(f"  {emb:<{width}}{cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(format_table(f"Table {TABLE_1.number} - {TABLE_1.title}", paper_rows(TABLE_1, "embed_params")))
    print(f"  note: {TABLE_1.note}")
    print(
        "  (EarlyConv: Table 4 prints widths 96-192-384-384; Table 1's 1.00M is EarlyConv's 48-96-192-384 "
        "stem + 1x1 conv, which we build.)"
    )
    for table in (TABLE_6, TABLE_7):
        print()
        print(format_table(f"Table {table.number} - {table.title}: model parameters", paper_rows(table, "params")))
    print()
    rows = [(f"vit_{b}_patch ({label})", size, count(f"vit_{b}_patch", num_classes=1000)) for b, (label, size) in DEIT.items()]
    print(format_table("Backbones: the patch embedding at 1,000 classes beside DeiT's published sizes", rows, "DeiT"))
    print("  (DeiT embeds with a 16x16 conv; ours is Table 3's LN-FC-LN, two LayerNorms more)")
    print()
    print(embedding_sizes())
    return 0
