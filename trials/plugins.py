"""Bring your own embedding: declare it, and tokensweep measures it beside the paper's three.

    # my_embeddings.py, in your own package
    from torch import nn
    from trials.plugins import Knob, register_embedding

    @register_embedding(knobs=[Knob("kernel", int, default=16, low=16, high=32, help="patch size; > 16 overlaps")])
    def overlap_patch(img_size: int, dim: int, *, kernel: int = 16) -> nn.Module:
        ...  # a module mapping (B, 3, S, S) -> (B, (S/16)**2, dim), with .grid_size = S // 16

That makes the models vit_tiny_overlap_patch, vit_ti_..., vit_s_... and vit_b_overlap_patch and the
grid value `embedding = "overlap_patch"`; the knob becomes a `tokensweep trial` flag (--kernel), a
spec option checked against its range, an MLflow param and an export column. Load the module with
`--plugin my_embeddings`, `[sweep] plugins = ["my_embeddings"]` in a spec, or, for an installed
package, the entry-point group `tokensweep.embeddings`. trials/models/builtin.py registers the
built-in embeddings the same way.
"""

from trials.errors import PluginError
from trials.models.knobs import Knob
from trials.models.catalog import ENTRY_POINT_GROUP, load_plugin
from trials.models.registry import register_embedding

__all__ = ["ENTRY_POINT_GROUP", "Knob", "PluginError", "load_plugin", "register_embedding"]
