"""The AIR model in torch: a sequential backbone plus the engine's intent composition.

Score of candidate ``c`` after a history (backbone state ``h``, candidate text vector ``x_c``)::

    score = h · e_c                      # the backbone (SASRec over the mixed sequence), frozen
          + s_air(u_c, x_c)              # the engine's score head (exported into the bundle)
          + h · (P u_c)                  # how the intent vector moves the backbone's preference

where ``u_c`` is the target-aware intent vector of ``docs/online-path.md`` §4, computed by
:class:`IntentComposition` from the attention slots that the **Rust engine** chose for this
(user, candidate) (:meth:`airrec.Engine.slots_batch`): the same tree, walk and evidence pruning
that serve, so there is no train/serve skew. :class:`IntentComposition` holds exactly the
engine's parameters (``compose_*``, ``score_*``) and is exported into a bundle with
:func:`airrec.bundle.replace_composition`; the engine then serves ``u_c`` and ``s_air`` equal
to torch's to float rounding (the parity test holds them to 1e-5).

Backbone and AIR part are trained together, from scratch (see :mod:`airrec.models.air_train`):
the backbone is the SASRec-mixed baseline's network (or, with ``AIRVariant.backbone =
"gru4rec"``, GRU4Rec's) with the same hyper-parameters and seed, so that baseline's row is this
model without intents.

Ablation switches (:class:`AIRVariant`):

* ``use_weights=False``: no tree weighting — ``ln w`` is dropped from the attention (and the
  engine is run with ``walk_alpha = 0``, ``decay_lambda = 0``);
* ``target_aware=False``: no target-aware retrieval — the intent vector is the mean of the
  value projections of the user's tree nodes (heaviest ``pooled_width``), the same for every
  candidate (not exportable: the engine always retrieves target-aware).

Lever (off by default, measured in the accuracy study):

* ``item_intents=True``: intents on the item side too — the backbone's item embedding gains
  the mean of learned embeddings of the item's own intent-trie nodes
  (:func:`item_intent_nodes`), so Food and Kitchen items under shared intent nodes are tied
  together. The backbone is not served by the engine, so nothing changes in the bundle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from airrec.bundle import BundleArrays, Composition
from airrec.models.base import SequenceModel

__all__ = ["AIRModel", "AIRVariant", "IntentComposition", "item_intent_nodes"]

PAD_TYPE = 255


@dataclass(frozen=True)
class AIRVariant:
    """Which parts of AIR are on (all by default); see the module docstring."""

    use_weights: bool = True
    target_aware: bool = True
    #: The backbone also reads the bundle's item text vectors (projected, added to its ID
    #: embeddings). Off by default: on Food–Kitchen it did not help (seed 0, valid HR@10 0.437
    #: with vs 0.444 without), and without it the SASRec (mixed) row is exactly AIR's backbone.
    backbone_text: bool = False
    #: The backbone's item embeddings also get learned embeddings of the item's intent nodes.
    item_intents: bool = False
    pooled_width: int = 32
    #: The sequential network under the intents: ``sasrec-mixed`` (the paper's) or ``gru4rec``
    #: (the strongest baseline on Food–Kitchen), each trained exactly as its baseline row.
    backbone: str = "sasrec-mixed"

    @property
    def engine_overrides(self) -> dict[str, float]:
        """Engine config changes this variant needs (no tree weighting: no walk bias, no decay)."""
        return {} if self.use_weights else {"walk_alpha": 0.0, "decay_lambda": 0.0}


def item_intent_nodes(arrays: BundleArrays, behaviour: int = 0) -> npt.NDArray[np.int64]:
    """Each item's intent-trie nodes (its paths' nodes, or its cold-start leaves' paths, as
    the engine serves them: :meth:`airrec.reference.Reference.event_nodes`), ``[n_items, K]``
    int64, ``-1`` padded, ``K`` the most any item has."""
    from airrec.reference import Reference

    ref = Reference(arrays)
    rows = [ref.event_nodes(i, behaviour) for i in range(arrays.dims.n_items)]
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _param(array: npt.ArrayLike, trainable: bool = True) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.array(array, dtype=np.float32)), requires_grad=trainable)


def _numpy(t: Tensor) -> npt.NDArray[np.float32]:
    return t.detach().cpu().numpy().astype(np.float32)


class IntentComposition(nn.Module):
    """The engine's multi-head attention composition and score head, trainable.

    ``node_vectors`` ``[N, d]`` and ``item_vectors`` ``[I, d]`` are the bundle's (frozen
    buffers); the parameters are initialised from a :class:`~airrec.bundle.Composition` (the
    bundle's, whose init is already meaningful) and exported back to one.
    """

    def __init__(
        self,
        composition: Composition,
        node_vectors: npt.ArrayLike,
        item_vectors: npt.ArrayLike,
        *,
        use_weights: bool = True,
    ) -> None:
        super().__init__()
        nv = torch.from_numpy(np.array(node_vectors, dtype=np.float32))
        iv = torch.from_numpy(np.array(item_vectors, dtype=np.float32))
        self.n_nodes = int(nv.shape[0])
        self.dim = composition.dim
        self.n_heads = composition.n_heads
        self.attn_dim = composition.attn_dim
        self.max_depth = composition.max_depth
        self.use_weights = use_weights
        # One table for both slot kinds: row n = node n, row N + i = item i.
        self.register_buffer("vectors", torch.cat([nv, iv]), persistent=False)
        c = composition
        self.wq, self.wk, self.wv, self.wo, self.bo = _param(c.wq), _param(c.wk), _param(c.wv), _param(c.wo), _param(c.bo)
        self.type_key, self.type_value = _param(c.type_key), _param(c.type_value)
        weight_bias = c.weight_bias if use_weights else np.zeros_like(c.weight_bias)
        self.weight_bias = _param(weight_bias, trainable=use_weights)
        self.score_w_out, self.score_w_inter = _param(c.score_w_out), _param(c.score_w_inter)
        self.score_bias = _param(c.score_bias)

    def candidate_vectors(self, items: Tensor) -> Tensor:
        """``x_c``: the bundle's item vectors of ``items`` (any shape) -> ``[..., d]``."""
        out: Tensor = self.get_buffer("vectors")[items + self.n_nodes]
        return out

    def forward(self, x: Tensor, ids: Tensor, types: Tensor, ln_w: Tensor) -> Tensor:
        """Intent vectors ``[..., d]`` of candidates ``x`` ``[..., d]`` over their slots
        (``ids``/``types``/``ln_w`` ``[..., S]`` as :meth:`airrec.Engine.slots_batch` returns)."""
        h, dk, depth = self.n_heads, self.attn_dim // self.n_heads, self.max_depth
        # Slots are left-aligned: drop the columns that are padding in every row.
        used = int((types != PAD_TYPE).sum(-1).max()) if types.numel() else 0
        ids, types, ln_w = ids[..., :used], types[..., :used], ln_w[..., :used]
        pad = types == PAD_TYPE
        types_l = types.long()
        rows = torch.where(types_l == depth, ids.long() + self.n_nodes, ids.long()).clamp_min(0)
        # Project each distinct slot vector once (a batch repeats nodes and items a lot).
        uniq, inverse = torch.unique(rows, return_inverse=True)
        z = self.get_buffer("vectors")[uniq]
        t = torch.where(pad, torch.full_like(types_l, depth + 1), types_l)
        k = (z @ self.wk)[inverse] + self.type_key[t]  # [..., S, a]
        v = (z @ self.wv)[inverse] + self.type_value[t]
        q = x @ self.wq  # [..., a]
        lead = q.shape[:-1]
        qh = q.reshape(*lead, 1, h, dk)
        logits = (k.reshape(*k.shape[:-1], h, dk) * qh).sum(-1) / math.sqrt(dk)  # [..., S, H]
        if self.use_weights:
            logits = logits + ln_w.unsqueeze(-1) * self.weight_bias
        logits = logits.masked_fill(pad.unsqueeze(-1), float("-inf"))
        # The null slot: zero vector, type depth + 1, ln w = 0.
        null_k = self.type_key[depth + 1].reshape(h, dk)
        null_logit = (q.reshape(*lead, h, dk) * null_k).sum(-1).unsqueeze(-2) / math.sqrt(dk)
        att = torch.softmax(torch.cat([logits, null_logit], dim=-2), dim=-2)  # [..., S+1, H]
        values = torch.cat([v, self.type_value[depth + 1].expand(*lead, 1, self.attn_dim)], dim=-2)
        o = (att.unsqueeze(-1) * values.reshape(*values.shape[:-1], h, dk)).sum(-3)  # [..., H, dk]
        out: Tensor = o.reshape(*lead, self.attn_dim) @ self.wo + self.bo
        return out

    def pooled(self, node_ids: Tensor) -> Tensor:
        """Target-independent intent vectors ``[U, d]``: the mean value projection of each
        user's tree nodes (``node_ids`` ``[U, W]``, ``-1`` padded) through the output projection."""
        valid = (node_ids >= 0).unsqueeze(-1).float()
        v = self.get_buffer("vectors")[node_ids.long().clamp_min(0)] @ self.wv
        mean = (v * valid).sum(-2) / valid.sum(-2).clamp_min(1.0)
        out: Tensor = mean @ self.wo + self.bo
        return out

    def score(self, u: Tensor, x: Tensor) -> Tensor:
        """The engine's built-in score head ``w_out·u + w_inter·(u ⊙ x) + b``."""
        out: Tensor = u @ self.score_w_out + (u * x) @ self.score_w_inter + self.score_bias
        return out

    def to_composition(self) -> Composition:
        """The trained weights as the bundle's :class:`~airrec.bundle.Composition`."""
        g = _numpy
        return Composition(
            wq=g(self.wq), wk=g(self.wk), wv=g(self.wv), wo=g(self.wo), bo=g(self.bo),
            type_key=g(self.type_key), type_value=g(self.type_value), weight_bias=g(self.weight_bias),
            score_w_out=g(self.score_w_out), score_w_inter=g(self.score_w_inter), score_bias=g(self.score_bias),
        )


class AIRModel(nn.Module):
    """Backbone + :class:`IntentComposition` + the backbone-intent interaction ``P``."""

    def __init__(self, backbone: SequenceModel, composition: IntentComposition, variant: AIRVariant = AIRVariant()) -> None:
        super().__init__()
        self.backbone = backbone
        self.composition = composition
        self.variant = variant
        self.interaction = nn.Parameter(torch.zeros(backbone.dim, composition.dim))

    def scores(self, states: Tensor, items: Tensor, u: Tensor, *, backbone_grad: bool = True) -> Tensor:
        """Scores ``[B, C]`` from backbone states ``[B, db]``, candidates ``[B, C]`` and their
        intent vectors ``[B, C, d]`` (or ``[B, 1, d]`` when target-independent).
        ``backbone_grad=False`` stops this score's gradient at the backbone (its states and
        item vectors): a loss on it trains only the intent part."""
        e = self.backbone.item_vectors(items)
        if not backbone_grad:
            states, e = states.detach(), e.detach()
        base = torch.einsum("bd,bcd->bc", states, e)
        x = self.composition.candidate_vectors(items)
        u = u.expand(-1, items.shape[1], -1)
        air = self.composition.score(u, x)
        inter = torch.einsum("bd,bcd->bc", states @ self.interaction, u)
        out: Tensor = base + air + inter
        return out
