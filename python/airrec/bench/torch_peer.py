"""The online request written the way a PyTorch user would write it: vectorised over the
candidates, no Python loop over them — the peer ``airrec bench online`` times the engine
against.

Same semantics as :class:`airrec.reference.Reference` (docs/online-path.md §2–§4): the tree's
node weights and capped evidence from the events, the beam walk level by level for all
candidates at once (masked top-k), evidence by masked top-k, and the multi-head attention
over each candidate's slots as one masked softmax. The walk runs in float64 (the engine's
parity contract chooses chains in float64), the composition in float32. Exact score ties in
the beam are broken by node id as the reference does only where they are exact; the benchmark
checks the scores against the engine's before timing.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec.bundle import BundleArrays, load_arrays
from airrec.reference import MIN_WEIGHT, Reference

__all__ = ["TorchPeer"]


class TorchPeer:
    """A bundle's online path in torch; :meth:`scores` answers one request."""

    def __init__(self, bundle: str | os.PathLike[str] | BundleArrays, *, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        arrays = bundle if isinstance(bundle, BundleArrays) else load_arrays(bundle)
        ref = Reference(arrays)
        self.config = ref.config
        dims = arrays.dims
        self.max_depth = dims.max_depth
        self.n_heads = dims.n_heads
        # Each item's event nodes (its paths' nodes), -1 padded: the lookup of §1.
        rows = [ref.event_nodes(i) for i in range(dims.n_items)]
        table = np.full((dims.n_items, max(1, max(len(r) for r in rows))), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            table[i, : len(r)] = r
        self.event_nodes = torch.from_numpy(table)
        self.parent = torch.from_numpy(np.array(arrays.trie_parent, dtype=np.int64))
        self.depth = torch.from_numpy(np.array(arrays.trie_depth, dtype=np.int64))
        self.node_vectors = torch.from_numpy(np.array(arrays.node_vectors, dtype=np.float32))
        self.item_vectors = torch.from_numpy(np.array(arrays.item_vectors, dtype=np.float32))
        self.node_vectors64 = self.node_vectors.double()
        self.item_vectors64 = self.item_vectors.double()
        self.w = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.composition.arrays().items()}
        self.behaviour_weights = torch.tensor(self.config["behaviour_weights"], dtype=torch.float64)

    def scores(self, items: npt.ArrayLike, candidates: npt.ArrayLike,
               timestamps: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        """Scores of ``candidates`` for the user whose events are ``items`` (behaviour 0,
        timestamps the positions unless given)."""
        torch = self.torch
        with torch.inference_mode():
            return self._scores(torch.as_tensor(np.asarray(items, dtype=np.int64)),
                                torch.as_tensor(np.asarray(candidates, dtype=np.int64)),
                                None if timestamps is None else torch.as_tensor(np.asarray(timestamps, np.float64)))

    def _scores(self, items: Any, cands: Any, times: Any) -> npt.NDArray[np.float32]:
        torch, cfg = self.torch, self.config
        n_events = items.numel()
        if n_events == 0:
            return self._compose_only(cands)
        t = torch.arange(n_events, dtype=torch.float64) if times is None else times
        age = t.max() - t
        lam = cfg["decay_lambda"]
        c = self.behaviour_weights[torch.zeros(n_events, dtype=torch.long)] * (torch.exp(-lam * age) if lam else 1.0)
        total = c.sum()
        # §2: the tree's nodes, weights and capped evidence.
        en = self.event_nodes[items]  # [E, K]
        valid = en >= 0
        nodes, inverse = torch.unique(en[valid], return_inverse=True)  # ascending node ids
        n_nodes = nodes.numel()
        if n_nodes == 0:
            return self._compose_only(cands)
        ev_of_pair = torch.arange(n_events).unsqueeze(1).expand_as(en)[valid]
        incidence = torch.zeros(n_nodes, n_events, dtype=torch.bool)
        incidence[inverse, ev_of_pair] = True
        w = (incidence.double() * c).sum(1)
        w_norm = torch.clamp(w / total, min=MIN_WEIGHT)
        # Evidence cap: the node's events by (c_e, e) descending, first node_evidence_cap.
        order = torch.from_numpy(np.lexsort((-np.arange(n_events), -c.numpy())))
        inc_sorted = incidence[:, order]
        kept_sorted = inc_sorted & (torch.cumsum(inc_sorted.int(), 1) <= cfg["node_evidence_cap"])
        evidence_of_node = torch.zeros_like(incidence)
        evidence_of_node[:, order] = kept_sorted
        depth = self.depth[nodes]
        parent_pos = torch.searchsorted(nodes, torch.clamp(self.parent[nodes], min=0))
        has_parent = self.parent[nodes] >= 0
        # §3: the walk for every candidate at once.
        x64 = self.item_vectors64[cands]  # [C, d]
        node_score = x64 @ self.node_vectors64[nodes].T + cfg["walk_alpha"] * torch.log(w_norm)  # [C, N]
        path_sum = node_score.clone()
        for level in range(2, int(depth.max()) + 1):
            at = (depth == level).nonzero().squeeze(1)
            path_sum[:, at] += path_sum[:, parent_pos[at]]
        mean = path_sum / depth.double()
        n_children = torch.zeros(n_nodes, dtype=torch.long)
        n_children.index_add_(0, parent_pos[has_parent], torch.ones(int(has_parent.sum()), dtype=torch.long))
        neg = torch.tensor(float("-inf"), dtype=torch.float64)
        beam, max_chain = cfg["beam_width"], cfg["max_chain_depth"]
        frontier = self._top_mask(torch.where(~has_parent, mean, neg), beam)
        complete = torch.zeros_like(frontier)
        while bool(frontier.any()):
            done = frontier & ((n_children == 0) | (depth == max_chain))
            complete |= done
            grow = frontier & ~done
            grown = has_parent & grow[:, parent_pos]  # children of growing chains
            frontier = self._top_mask(torch.where(grown, mean, neg), beam)
        ends = self._top_mask(torch.where(complete, mean, neg), cfg["max_chains"])
        # Chain nodes: every ancestor of a chosen end (once each).
        chain_nodes = ends.clone()
        up = ends
        for _ in range(int(depth.max()) - 1):
            moved = torch.zeros_like(up)
            rows, cols = up.nonzero(as_tuple=True)
            keep = has_parent[cols]
            moved[rows[keep], parent_pos[cols[keep]]] = True
            chain_nodes |= moved
            up = moved
        # Evidence: the chosen ends' evidence, age-filtered, best max_evidence by score.
        ev = (ends.float() @ evidence_of_node.float()) > 0  # [C, E]
        max_age = cfg["evidence_max_age"]
        if max_age is not None:
            ev &= (age <= max_age).unsqueeze(0)
        rel = torch.clamp(c / total, min=MIN_WEIGHT)
        ev_vectors64 = self.item_vectors64[items]
        ev_score = torch.log(rel) + cfg["evidence_alpha"] * (x64 @ ev_vectors64.T)
        # Ties by event index ascending, as the reference's lexsort.
        evidence = self._top_mask(torch.where(ev, ev_score - 1e-12 * torch.arange(n_events), neg), cfg["max_evidence"])
        return self._compose(cands, nodes, depth, torch.log(w_norm), chain_nodes, items, torch.log(rel), evidence)

    @staticmethod
    def _top_mask(values: Any, k: int) -> Any:
        """Mask of each row's ``k`` largest finite entries."""
        import torch

        k = min(k, values.shape[1])
        top = torch.topk(values, k, dim=1)
        mask = torch.zeros_like(values, dtype=torch.bool)
        mask.scatter_(1, top.indices, torch.isfinite(top.values))
        return mask

    def _compose(self, cands: Any, nodes: Any, depth: Any, ln_w_nodes: Any, chain_nodes: Any, items: Any,
                 ln_w_events: Any, evidence: Any) -> npt.NDArray[np.float32]:
        """§4: multi-head attention of each candidate over its chain nodes, evidence events
        and the null slot, then the score head."""
        torch, w, h = self.torch, self.w, self.n_heads
        x = self.item_vectors[cands]
        a = w["compose_wq"].shape[1]
        dk = a // h
        q = (x @ w["compose_wq"]).reshape(-1, h, dk)
        zn, ze = self.node_vectors[nodes], self.item_vectors[items]
        kn = (zn @ w["compose_wk"] + w["compose_type_key"][depth - 1]).reshape(-1, h, dk)
        vn = (zn @ w["compose_wv"] + w["compose_type_value"][depth - 1]).reshape(-1, h, dk)
        ke = (ze @ w["compose_wk"] + w["compose_type_key"][self.max_depth]).reshape(-1, h, dk)
        ve = (ze @ w["compose_wv"] + w["compose_type_value"][self.max_depth]).reshape(-1, h, dk)
        null_k = w["compose_type_key"][self.max_depth + 1].reshape(h, dk)
        null_v = w["compose_type_value"][self.max_depth + 1].reshape(h, dk)
        bias = w["compose_weight_bias"]
        scale = 1.0 / math.sqrt(dk)
        ln = torch.einsum("chk,nhk->cnh", q, kn) * scale + ln_w_nodes.float()[None, :, None] * bias
        le = torch.einsum("chk,ehk->ceh", q, ke) * scale + ln_w_events.float()[None, :, None] * bias
        l0 = (q * null_k).sum(-1, keepdim=True).transpose(1, 2) * scale  # [C, 1, H]
        ninf = torch.tensor(float("-inf"))
        logits = torch.cat([torch.where(chain_nodes.unsqueeze(-1), ln, ninf),
                            torch.where(evidence.unsqueeze(-1), le, ninf), l0], dim=1)
        att = torch.softmax(logits, dim=1)  # [C, S, H]
        n_n, n_e = kn.shape[0], ke.shape[0]
        out = (torch.einsum("cnh,nhk->chk", att[:, :n_n], vn) + torch.einsum("ceh,ehk->chk", att[:, n_n:n_n + n_e], ve)
               + att[:, -1:].transpose(1, 2) * null_v)
        u = out.reshape(-1, a) @ w["compose_wo"] + w["compose_bo"]
        s = u @ w["score_w_out"] + (u * x) @ w["score_w_inter"] + w["score_bias"][0]
        return np.asarray(s.numpy(), dtype=np.float32)

    def _compose_only(self, cands: Any) -> npt.NDArray[np.float32]:
        """An empty tree: only the null slot (the engine's cold answer)."""
        torch = self.torch
        empty_b = torch.zeros((cands.numel(), 0), dtype=torch.bool)
        none = torch.zeros(0, dtype=torch.long)
        return self._compose(cands, none, none + 1, torch.zeros(0), empty_b, none, torch.zeros(0), empty_b)
