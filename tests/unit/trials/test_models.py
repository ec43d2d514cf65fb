"""Every variant builds, runs forward and backward, and every parameter receives a gradient;
parameter counts against the paper (Tables 1, 6, 7)."""

import pytest
import torch

import trials
from trials import ConfigError, create_model, list_models

SMALL = dict(img_size=32, num_classes=7)


def param_count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def assert_every_param_gets_gradient(model, img_size):
    model.train()
    x = torch.randn(2, 3, img_size, img_size)
    model(x).logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for: {missing}"
    silent = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not silent, f"all-zero gradient for: {silent}"


def test_registry_names():
    names = set(list_models())
    for kind in ("patch", "conv", "supertoken"):
        assert {f"vit_s_{kind}", f"vit_tiny_{kind}"} <= names


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_parameter_gets_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    assert hasattr(model, "embed")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert_every_param_gets_gradient(model, 32)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(conv_depth=0),
        dict(conv_depth=1),
        dict(conv_depth=2),
        dict(conv_depth=4),
        dict(conv_depth=6, extra_conv=True),
        dict(cluster_iters=1, mask_border=True),
        dict(channels=[4, 8, 8, 12, 12, 16]),
    ],
)
def test_supertoken_overrides_build_and_train(overrides):
    torch.manual_seed(0)
    model = create_model("vit_tiny_supertoken", **SMALL, **overrides)
    assert_every_param_gets_gradient(model, 32)


@pytest.mark.parametrize("img_size", [16, 48, 64, 96])
def test_any_multiple_of_16_works(img_size):
    for kind in ("patch", "conv", "supertoken"):
        model = create_model(f"vit_tiny_{kind}", img_size=img_size, num_classes=3).eval()
        grid = img_size // 16
        assert model.pos_embed.shape[1] == grid * grid + 1
        assert model(torch.randn(1, 3, img_size, img_size)).shape == (1, 3)


def test_embedding_parameter_counts_match_the_paper():
    # Table 1 at width 384: patch 0.30M (exactly 297,600 per Table 3), EarlyConv 1.00M
    assert param_count(create_model("vit_s_patch").embed) == 297_600
    conv = param_count(create_model("vit_s_conv").embed)
    assert abs(conv - 1_021_488) <= 0.005 * 1_021_488
    # super-token: six conv-BN modules (16,32,32,64,64,64) + FC 64->384, as Table 5 prints them
    assert param_count(create_model("vit_s_supertoken").embed) == 131_920


def test_model_sizes_match_tables_6_and_7():
    # Table 6: 18M, 20M (paper rounds 18.9 up), 17M; Table 7: 17.7-17.9M. Within 0.5M of our ViT-S.
    sizes = {k: param_count(create_model(f"vit_s_{k}")) / 1e6 for k in ("patch", "conv", "supertoken")}
    assert 17.9 < sizes["patch"] < 18.3
    assert 18.7 < sizes["conv"] < 19.1
    assert 17.7 < sizes["supertoken"] < 18.1
    none = param_count(create_model("vit_s_supertoken", conv_depth=0)) / 1e6
    assert 17.7 < none < 17.95  # Table 7 'none': 17.7M


def test_clustering_config_reaches_the_module():
    model = create_model("vit_s_supertoken", cluster_iters=2, mask_border=True, conv_depth=4)
    assert model.embed.cluster.iters == 2 and model.embed.cluster.mask_border
    assert model.embed.cluster.grid == 4  # 56x56 after four modules -> 14x14 tokens


@pytest.mark.parametrize(
    "name,overrides,fragment",
    [
        ("vit_s_pach", {}, "unknown model 'vit_s_pach' (did you mean 'vit_s_patch'?)"),
        ("vit_s_supertoken", dict(conv_depth=7), "conv_depth must be an integer from 0 to 6, got 7"),
        ("vit_s_supertoken", dict(cluster_iters=0), "cluster_iters must be an integer from 1 to"),
        ("vit_s_supertoken", dict(channels=[16, 32, 32, 64, 64]), "channels must be 6 integers from 1 to 1024"),
        ("vit_s_patch", dict(img_size=100), "img_size must be a positive multiple of 16"),
        ("vit_s_patch", dict(conv_depth=2), "has no option 'conv_depth'"),
        ("vit_s_supertoken", dict(mask_border="yes"), "mask_border must be true or false"),
    ],
)
def test_bad_overrides_give_one_line_errors(name, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        create_model(name, **overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_public_api():
    for name in ("create_model", "run_trial", "TrialConfig", "register_embedding", "Knob"):
        assert hasattr(trials, name)


def test_flops_count_every_matmul_and_attention_on_cpu():
    """FLOPs of vit_s_patch by hand (2 per multiply-add): patch projection, per block qkv + proj + MLP and
    attention's QK^T and AV, the head. torch's counter has no formula for CPU flash attention by itself."""
    from trials.measure import flops_per_image

    d, mlp, depth, classes, tokens = 384, 1152, 12, 100, 197
    patch = 2 * 196 * (3 * 16 * 16) * d
    linears = 2 * tokens * (d * 3 * d + d * d + 2 * d * mlp)
    attention = 2 * 2 * tokens * tokens * d
    head = 2 * d * classes
    assert flops_per_image(create_model("vit_s_patch"), 224) == patch + depth * (linears + attention) + head


def test_backbone_alone_is_the_model_after_its_embedding():
    """forward_tokens (what benchmarks time as the backbone) is the model past its embedding, and the
    FLOPs of the parts add up to the model's."""
    from trials.measure import count_flops, flops_per_image

    model = create_model("vit_tiny_supertoken").eval()
    size = model.spec.img_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.embed(x)
        torch.testing.assert_close(model.head(model.forward_tokens(tokens)[:, 0]), model(x), rtol=0, atol=0)
    parts = count_flops(lambda: model.embed(x[:1])) + count_flops(lambda: model.forward_tokens(tokens[:1]))
    head = 2 * model.cfg.dim * model.cfg.num_classes
    assert parts + head == flops_per_image(model, size) > head
