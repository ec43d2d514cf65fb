"""The paper's published numbers, as data.

Lee, Lee & Kim, "Lightweight ViT Convolutional Embedding Module Based on Super-Token Clustering",
J. Digital Contents Society 25(2):485-494, 2024. ImageNet-100, 300 epochs, on the authors' own
hardware (not stated): their throughputs are not comparable with this sweep's.

Each row says which runs measure the same thing (`match`: run column -> value; see
dashboards.compare for how a run is matched whatever its backbone). A run whose column is null used
the model's default, which for the super-token embedding is the paper's proposed configuration
(`PROPOSED`). `differences` name the rows the paper compares.
"""

from dataclasses import dataclass, field

CITATION = "Lee, Lee & Kim 2024 (J. Digital Contents Society 25(2))"
DATASET = "imagenet100"  # the paper's data set: a sweep on it is compared with the paper by default
HARDWARE_NOTE = "ImageNet-100, 300 epochs, on the authors' hardware"

# The proposed super-token embedding: conv modules 1-6, 3 clustering iterations, Table 5 widths,
# border neighbours not masked (as in the STViT reference).
PROPOSED = {
    "conv_depth": 6,
    "extra_conv": False,
    "cluster_iters": 3,
    "channels": "16,32,32,64,64,64",
    "mask_border": False,
}


@dataclass(frozen=True)
class Column:
    metric: str  # a runs-table column
    label: str
    unit: str  # how to print it: "M" (millions), "%", "img/s"


@dataclass(frozen=True)
class Row:
    label: str
    match: dict  # run column -> value a run must have to measure this row
    values: dict  # metric -> the paper's value (None: not printed)


@dataclass(frozen=True)
class Compared:
    """A difference the paper draws: row `a` minus row `b` (indexes into the table's rows)."""

    label: str
    a: int
    b: int


@dataclass(frozen=True)
class Table:
    number: int
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    note: str = ""
    differences: tuple[Compared, ...] = ()
    by_embedding: bool = False  # rows are embeddings: a sweep's other embeddings (its own) get rows too


def _supertoken(**knobs) -> dict:
    return {"embedding": "supertoken", **PROPOSED, **knobs}


TOP1 = Column("top1", "top-1", "%")
MODEL_PARAMS = Column("params", "model params", "M")

TABLE_1 = Table(
    1,
    "Embedding parameters (width 384)",
    (Column("embed_params", "embedding params", "M"),),
    (
        Row("patch embedding", {"embedding": "patch"}, {"embed_params": 0.30e6}),
        Row("convolution embedding", {"embedding": "conv"}, {"embed_params": 1.00e6}),
        Row("super-token conv (proposed)", _supertoken(), {"embed_params": 0.09e6}),
    ),
    "The paper's 0.09M is below what its Table 5 layers give (~0.13M): compare with care.",
    by_embedding=True,
)

TABLE_6 = Table(
    6,
    "ImageNet-100 top-1 by embedding",
    (MODEL_PARAMS, TOP1),
    (
        Row("patch embedding", {"embedding": "patch"}, {"params": 18e6, "top1": 78.44}),
        Row("convolution embedding", {"embedding": "conv"}, {"params": 20e6, "top1": 81.14}),
        Row("super-token clustering embedding", _supertoken(), {"params": 17e6, "top1": 83.52}),
    ),
    differences=(Compared("super-token − conv", 2, 1), Compared("super-token − patch", 2, 0)),
    by_embedding=True,
)
# The paper's headline: super-token over convolution embedding, +2.38 points of top-1.
CLAIM = (TABLE_6, TABLE_6.differences[0], "top1")

TABLE_7 = Table(
    7,
    "Conv modules before the clustering",
    (MODEL_PARAMS, TOP1),
    (
        Row("none (224x224)", _supertoken(conv_depth=0), {"params": 17.7e6, "top1": 48.26}),
        Row("1 (224x224 as printed)", _supertoken(conv_depth=1), {"params": 17.8e6, "top1": 80.20}),
        Row("1-2 (112x112)", _supertoken(conv_depth=2), {"params": 17.8e6, "top1": 80.68}),
        Row("1-4 (56x56)", _supertoken(conv_depth=4), {"params": 17.8e6, "top1": 82.18}),
        Row("1-6 (28x28)", _supertoken(conv_depth=6), {"params": 17.9e6, "top1": 83.52}),
        Row("1-6 + one more conv (14x14)", _supertoken(extra_conv=True), {"params": 17.9e6, "top1": 81.50}),
    ),
)

TABLE_8 = Table(
    8,
    "Clustering (similarity) updates",
    (TOP1, Column("images_per_sec", "throughput", "img/s")),
    (
        Row("1 iteration", _supertoken(cluster_iters=1), {"top1": 82.96, "images_per_sec": 766}),
        Row("2 iterations", _supertoken(cluster_iters=2), {"top1": 83.02, "images_per_sec": 749}),
        Row("3 iterations", _supertoken(cluster_iters=3), {"top1": 83.52, "images_per_sec": 737}),
        Row("4 iterations (label lost in OCR)", _supertoken(cluster_iters=4), {"top1": 83.30, "images_per_sec": None}),
    ),
    "Throughput on the authors' GPU (not stated); this sweep's is on its own device.",
    differences=tuple(Compared(f"{k} − 3 iterations", k - 1, 2) for k in (1, 2, 4)),
)

TABLES = (TABLE_1, TABLE_6, TABLE_7, TABLE_8)


@dataclass(frozen=True)
class ReferencePoint:
    """A published result to draw on the chart, beside (not among) the sweep's runs."""

    label: str
    table: int
    embedding: str
    values: dict = field(default_factory=dict)  # metric -> value
    line_when_partial: bool = False  # only one axis known: draw a reference line instead


def reference_points() -> list[ReferencePoint]:
    """Table 6 (accuracy and size, no throughput printed) and Table 8 (accuracy and throughput)."""
    points = [
        ReferencePoint(f"{row.match['embedding']} embedding", 6, row.match["embedding"], row.values, True)
        for row in TABLE_6.rows
    ]
    points += [
        ReferencePoint(f"supertoken, {row.match['cluster_iters']} clustering iterations", 8, "supertoken", row.values)
        for row in TABLE_8.rows
        if row.values["images_per_sec"] is not None
    ]
    return points
