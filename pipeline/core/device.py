"""Where and how a model runs: CUDA with autocast and channels_last when present, else the CPU;
alone, or data-parallel with the other ranks of a `Group` (distributed.py)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

import torch
from torch import nn

from pipeline import PipelineError
from pipeline.core.distributed import SINGLE, Group


@dataclass
class Device:
    device: torch.device
    amp_dtype: torch.dtype | None
    workers: int                # loader worker processes
    channels_last: bool = True  # faster for convnets on both CUDA and CPU (oneDNN)
    compile: bool = False       # torch.compile models: faster steps once compiled, minutes to compile
    flips_on_device: bool = False  # random flips of training batches here (transforms.random_flips), not in the loader
    group: Group = SINGLE       # the ranks that train each model together (--parallel data), this one among them

    @classmethod
    def pick(cls, name: str = "auto", compile: bool = False) -> "Device":
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise PipelineError(f"--device {name}: no CUDA device visible to torch; use --device cpu")
        dev = torch.device(name)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # a phase's shapes repeat: time cuDNN's kernels once, keep the fastest
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return cls(dev, amp, workers=min(8, os.cpu_count() or 1), compile=compile, flips_on_device=True)
        # on a CPU, loader workers would take cores from the model; augmenting small cached
        # images in the main process costs far less than the forward/backward pass
        keep_freed_memory()
        return cls(dev, None, workers=0, compile=compile)

    def place(self, model: nn.Module) -> nn.Module:
        """Move `model` here (channels_last when set), compiled when asked; returns it. How a
        batch becomes its input is the kind of data's (inputs.py: `placer`)."""
        model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        if self.compile and getattr(model, "_compiled_call_impl", None) is None:
            # in place, so state_dict keys stay those of the plain model. Each image size, batch
            # shape, train/eval mode and frozen set is a graph of its own: allow a run's worth
            limits = torch._dynamo.config
            name = "recompile_limit" if hasattr(limits, "recompile_limit") else "cache_size_limit"
            setattr(limits, name, max(getattr(limits, name), 64))
            model.compile()
        return model

    def parallel(self, net: nn.Module) -> nn.Module:
        """`net` for training steps: wrapped in DistributedDataParallel when the group has several
        ranks (gradients averaged across them in the backward pass), else `net` itself. Built
        again for each phase, since DDP fixes the set of trained parameters when it wraps."""
        if not self.group.active or not any(p.requires_grad for p in net.parameters()):
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4


def keep_freed_memory() -> bool:
    """Have glibc keep the memory of freed activations for the next batch. By default it maps
    each large block afresh (a batch's activations are 10 to 100 MB a tensor) and gives it back
    when freed, so every batch's memory is page-faulted in and zeroed by the kernel again: on a
    2-core CPU that made prediction 1.9x and training 1.3x slower (benchmarks/RESULTS.md, issue
    17). Now every block comes from the heap, which keeps up to 1 GiB free for the next batch.
    What jemalloc or tcmalloc under LD_PRELOAD would do, from inside the process. Returns
    whether it applied (False off glibc: macOS, musl)."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name)
        libc.gnu_get_libc_version  # glibc only: other C libraries have no (or another) mallopt
    except (OSError, AttributeError, TypeError):
        return False
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
    return all(libc.mallopt(k, v) == 1 for k, v in settings)
