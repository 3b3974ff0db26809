"""The entity-embeddings network (Guo & Berkhahn 2016; fast.ai's tabular model): each categorical
column an index into a learned embedding, the embeddings (with dropout) beside the continuous
columns (through BatchNorm) into dense layers with ReLU, BatchNorm and dropout, and a linear head.
The regression task squashes the output into the target's range (tasks.Regression, fast.ai's
y_range). Layer groups, as the trainer's recipes name them: "early" the embeddings and the
continuous inputs' BatchNorm, "late" the dense layers, "head" the output layer.

`arch` names it in a recipe: "embeddings" (fast.ai's Rossmann widths, 1000 and 500), or the
widths spelt out, "embeddings-500-250"."""
from __future__ import annotations

import re

import torch
from torch import nn

from pipeline import PipelineError

ARCH = re.compile(r"^embeddings(?:-(\d+(?:-\d+)*))?$")
WIDTHS = (1000, 500)        # fast.ai's Rossmann lesson
DROPOUT = (0.001, 0.01)     # per dense layer, as the lesson has them: the embeddings do the regularising
EMBEDDING_DROPOUT = 0.04


def embedding_size(cardinality: int) -> int:
    """fast.ai's rule (fastai.tabular.model.emb_sz_rule): min(600, round(1.6 * n ** 0.56)). It
    grows with the number of values, but far slower than it (the 1,115 stores and the row for an
    unseen value get 81 numbers, a weekday's 8 rows 5, a yes/no's 3 rows 3): Jeremy Howard fitted it to the sizes that worked best across many
    tables; its predecessor, half the cardinality up to 50, starved the large columns."""
    return min(600, round(1.6 * cardinality ** 0.56))


def is_table_arch(arch: str) -> bool:
    return bool(ARCH.match(arch))


def widths(arch: str) -> tuple[int, ...]:
    m = ARCH.match(arch)
    if not m:
        raise PipelineError(f"--arch {arch!r}: a table's model is 'embeddings' or its dense widths spelt out, "
                            f"e.g. 'embeddings-500-250'")
    return tuple(int(w) for w in m.group(1).split("-")) if m.group(1) else WIDTHS


class EntityEmbeddings(nn.Module):
    def __init__(self, cardinalities: list[int], continuous: int, layers: tuple[int, ...] = WIDTHS,
                 outputs: int = 1, dropout: tuple[float, ...] = DROPOUT, embedding_dropout: float = EMBEDDING_DROPOUT):
        super().__init__()
        self.n_categorical, self.num_classes = len(cardinalities), outputs
        self.embeds = nn.ModuleList(nn.Embedding(c, embedding_size(c)) for c in cardinalities)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.bn_cont = nn.BatchNorm1d(continuous) if continuous else nn.Identity()
        width = sum(e.embedding_dim for e in self.embeds) + continuous
        drops = tuple(dropout) + (dropout[-1],) * (len(layers) - len(dropout))
        body = []
        for w, p in zip(layers, drops):
            body += [nn.Linear(width, w), nn.ReLU(inplace=True), nn.BatchNorm1d(w), nn.Dropout(p)]
            width = w
        self.layers = nn.Sequential(*body)
        self.head = nn.Linear(width, outputs)

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"embeddings": r"^(?:embeds|bn_cont)", "dense": r"^layers"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        codes, cont = x[:, :self.n_categorical].long(), x[:, self.n_categorical:]
        parts = [e(codes[:, i]) for i, e in enumerate(self.embeds)]
        h = [self.embedding_dropout(torch.cat(parts, 1))] if parts else []
        if cont.shape[1]:
            h.append(self.bn_cont(cont))
        return self.layers(torch.cat(h, 1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
