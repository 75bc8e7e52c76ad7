"""Continuous batched decoding over llama.cpp's C API: many prompts, one shared prefix.

Why not ``Llama.create_chat_completion`` in a loop? On a CPU, decoding one token of a 0.5B
model is bound by reading the weights from memory; decoding the next token of 16 different
sequences in the same ``llama_decode`` call reads them once. llama-cpp-python's high-level
``Llama`` keeps one sequence, so this module drives the C API directly:

* the fixed few-shot prefix is evaluated once into sequence 0 and kept; a job's sequence
  starts as a copy of it (``llama_memory_seq_cp`` on a unified KV cache tags the same cells,
  so the copy is free): shared-prefix KV reuse without save/load of state;
* up to ``n_parallel`` jobs decode together; when one finishes, the next job's prompt
  suffix is fed in the same batch as the others' next tokens (continuous batching);
* each job has its own GBNF grammar, so every output is well-formed by construction and
  stops as soon as the grammar says the answer is complete.

Grammar sampling in llama.cpp checks every vocabulary entry (151k for Qwen) against the
grammar at every step: ~10 ms a token here, a third of the decode time. Most steps, the
model's own top choice is grammatical, so :meth:`LlamaBatchEngine._sample` ranks the top
``k`` logits in NumPy (after a repetition penalty on the job's own tokens of the current
answer line, which curbs ``breads > breads > breads`` loops), asks the grammar about those few tokens only, and falls
back to the full-vocabulary grammar pass only when none of them is allowed.

The class is deliberately ignorant of intents: it turns (suffix tokens, grammar) jobs into
text. Everything about prompts and parsing lives elsewhere.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from airrec.errors import GenerationError, ModelError

__all__ = ["BatchJob", "BatchResult", "LlamaBatchEngine", "quiet_llama_logs"]


def _lib() -> Any:
    """The ``llama_cpp`` module, imported lazily (it is an optional dependency)."""
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelError(
            "intent generation needs llama-cpp-python: pip install 'airrec[offline]'"
        ) from exc
    return llama_cpp


_LOG_CALLBACK: Any = None


def quiet_llama_logs() -> None:
    """Silence llama.cpp's C-level logging (it writes hundreds of lines per model load)."""
    global _LOG_CALLBACK
    lib = _lib()
    if _LOG_CALLBACK is None:

        @lib.llama_log_callback  # type: ignore[untyped-decorator]
        def _silent(level: int, text: bytes, user_data: Any) -> None:
            return None

        _LOG_CALLBACK = _silent
    lib.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


class JobQueue(Protocol):
    """What :meth:`LlamaBatchEngine.run` needs of a live queue (a ``deque`` qualifies)."""

    def __bool__(self) -> bool: ...
    def __getitem__(self, index: int) -> BatchJob: ...
    def popleft(self) -> BatchJob: ...


@dataclass
class BatchJob:
    """One prompt to complete: the tokens after the shared prefix, and how to sample."""

    key: Any
    suffix: Sequence[int]
    grammar: str
    max_tokens: int = 96
    temperature: float = 0.0
    seed: int = 0
    stop: Callable[[str], bool] | None = None  # True when the text so far is complete
    repeat_penalty: float = 1.2


@dataclass
class BatchResult:
    """A finished job: its text, token counts and why it stopped."""

    key: Any
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str  # "stop" (grammar/stop/EOS) or "length"
    seconds: float = 0.0  # from entering a sequence slot to finishing


@dataclass
class _Slot:
    job: BatchJob
    seq: int
    sampler: Any
    rng: np.random.Generator
    pos: int
    pieces: list[bytes]
    n_out: int = 0
    last_token: int = -1
    logit_index: int = -1
    done: bool = False
    history: list[int] | None = None
    started: float = 0.0


class LlamaBatchEngine:
    """A llama.cpp model + context that decodes ``n_parallel`` sequences at once.

    ``n_ctx`` must hold the prefix once plus every parallel job's suffix and output (the
    prefix cells are shared between sequences).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_parallel: int = 8,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 1024,
        top_k: int = 16,
    ) -> None:
        lib = _lib()
        self._lib = lib
        quiet_llama_logs()
        lib.llama_backend_init()
        threads = n_threads or max(1, os.cpu_count() or 1)
        mparams = lib.llama_model_default_params()
        model = lib.llama_model_load_from_file(os.fspath(model_path).encode(), mparams)
        if not model:
            raise ModelError(f"llama.cpp could not load model {model_path}")
        self._model = model
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = min(n_batch, 512)
        cparams.n_seq_max = n_parallel + 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = True
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise ModelError(f"llama.cpp could not create a context for {model_path}")
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self._vocab = lib.llama_model_get_vocab(model)
        self.n_parallel = n_parallel
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._prefix_len = 0
        self.prefix_evals = 0
        self._n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._top_k = min(top_k, self._n_vocab)
        self._word_tokens: dict[int, bool] = {}
        # One candidate buffer laid out as llama_token_data {int32 id; float logit; float p}.
        layout = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        self._cand = np.zeros(self._n_vocab, dtype=layout)
        self._cand_arr = lib.llama_token_data_array(
            data=self._cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
            size=0, selected=-1, sorted=False,
        )

    # -- text <-> tokens -------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Tokens of ``text``; special tokens (``<|im_start|>``) are parsed as such."""
        lib = self._lib
        data = text.encode()
        cap = len(data) + 16
        buf = (lib.llama_token * cap)()
        n = lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            cap = -n
            buf = (lib.llama_token * cap)()
            n = lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens render as empty)."""
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        return bytes(buf.raw[:n])

    def chat_template(self) -> str | None:
        """The model's own chat template (Jinja text), if the GGUF carries one."""
        raw = self._lib.llama_model_chat_template(self._model, None)
        return raw.decode() if raw else None

    def apply_chat(self, messages: Sequence[tuple[str, str]], *, add_assistant: bool) -> str:
        """Render ``(role, content)`` messages with the model's template via llama.cpp's
        built-in template engine (ChatML, Llama 3, Gemma, ... detected from the template)."""
        lib = self._lib
        tmpl = lib.llama_model_chat_template(self._model, None)
        arr = (lib.llama_chat_message * len(messages))()
        keep = []
        for i, (role, content) in enumerate(messages):
            r, c = role.encode(), content.encode()
            keep += [r, c]
            arr[i].role, arr[i].content = r, c
        size = sum(len(c) for _, c in messages) * 2 + 1024
        buf = ctypes.create_string_buffer(size)
        n = lib.llama_chat_apply_template(tmpl, arr, len(messages), add_assistant, buf, size)
        if n > size:
            buf = ctypes.create_string_buffer(n)
            n = lib.llama_chat_apply_template(tmpl, arr, len(messages), add_assistant, buf, n)
        if n < 0:
            raise ModelError("llama.cpp does not know this model's chat template")
        return bytes(buf.raw[:n]).decode()

    # -- decoding --------------------------------------------------------------------------

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        b = self._batch
        i = int(b.n_tokens)
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1
        return i

    def _decode(self) -> None:
        rc = self._lib.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise GenerationError(f"llama_decode failed with code {rc} (context full?)")

    def set_prefix(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens`` into sequence 0 once; every job continues from it."""
        lib = self._lib
        lib.llama_memory_clear(self._mem, True)
        if len(tokens) >= self.n_ctx // 2:
            raise GenerationError(f"prompt prefix of {len(tokens)} tokens is too long for n_ctx")
        for start in range(0, len(tokens), self.n_batch):
            self._batch.n_tokens = 0
            chunk = tokens[start : start + self.n_batch]
            for j, tok in enumerate(chunk):
                self._add(tok, start + j, 0, False)
            self._decode()
        self._prefix_len = len(tokens)
        self.prefix_evals += 1

    def decode_rates(self, n_seqs: int, *, steps: int = 24, prompt_tokens: int = 256) -> dict[
        str, float
    ]:
        """The hardware's ceiling on this model: tokens/s of plain ``llama_decode``, no
        sampling, no grammar, no Python per token.

        ``decode_tokens_per_s``: ``n_seqs`` sequences continuing the prefix one token each
        per call (what answer tokens cost at that batch size); ``prompt_tokens_per_s``: one
        sequence evaluating ``prompt_tokens`` tokens in one call (what prompt suffixes cost).
        Leaves the prefix in sequence 0 as it was."""
        if self._prefix_len == 0:
            raise GenerationError("set_prefix() must run before decode_rates()")
        if not 1 <= n_seqs <= self.n_parallel:
            raise GenerationError(f"n_seqs must be in 1..{self.n_parallel}")
        lib = self._lib
        token = self.tokenize(" a")[-1]
        seqs = range(1, n_seqs + 1)
        try:
            for seq in seqs:
                lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
                lib.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
            start = time.perf_counter()
            for step in range(steps):
                self._batch.n_tokens = 0
                for seq in seqs:
                    self._add(token, self._prefix_len + step, seq, True)
                self._decode()
            decode = n_seqs * steps / (time.perf_counter() - start)
            lib.llama_memory_seq_rm(self._mem, 1, -1, -1)
            lib.llama_memory_seq_cp(self._mem, 0, 1, -1, -1)
            n = min(prompt_tokens, self.n_batch)
            self._batch.n_tokens = 0
            for j in range(n):
                self._add(token, self._prefix_len + j, 1, j == n - 1)
            start = time.perf_counter()
            self._decode()
            prompt = n / (time.perf_counter() - start)
        finally:
            for seq in seqs:
                lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        return {"decode_tokens_per_s": round(decode, 2), "prompt_tokens_per_s": round(prompt, 2)}

    def _sampler(self, job: BatchJob) -> Any:
        """A grammar-only sampler: used to *check* tokens, never to pick them."""
        lib = self._lib
        grammar = lib.llama_sampler_init_grammar(self._vocab, job.grammar.encode(), b"root")
        if not grammar:
            raise GenerationError("llama.cpp rejected the output grammar")
        return grammar

    def _allowed(self, sampler: Any, tokens: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which of ``tokens`` the grammar accepts next (one ``llama_sampler_apply`` call)."""
        n = int(tokens.size)
        data = self._cand
        data["id"][:n] = tokens
        data["logit"][:n] = 0.0
        arr = self._cand_arr
        arr.size = n
        arr.selected = -1
        arr.sorted = False
        self._lib.llama_sampler_apply(sampler, ctypes.byref(arr))
        allowed: npt.NDArray[np.bool_] = np.isfinite(data["logit"][:n])
        return allowed

    def _sample(self, slot: _Slot) -> int:
        """Pick the next token: top-k by penalised logit, first one the grammar allows."""
        lib = self._lib
        ptr = lib.llama_get_logits_ith(self._ctx, slot.logit_index)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        job = slot.job
        for k in (self._top_k, self._n_vocab):
            if k >= self._n_vocab:
                cand = np.arange(self._n_vocab, dtype=np.int64)
            else:
                cand = np.argpartition(logits, -k)[-k:].astype(np.int64)
            values = logits[cand].astype(np.float64)
            if slot.history and job.repeat_penalty != 1.0:
                seen = np.isin(cand, slot.history)
                pen = job.repeat_penalty
                values[seen] = np.where(values[seen] > 0, values[seen] / pen, values[seen] * pen)
            if job.temperature > 0:
                # Gumbel-max: sampling from softmax(values / T) as an ordering of candidates.
                values = values / job.temperature + slot.rng.gumbel(size=values.size)
            order = cand[np.argsort(-values, kind="stable")]
            allowed = self._allowed(slot.sampler, order)
            hits = np.flatnonzero(allowed)
            if hits.size:
                tok = int(order[hits[0]])
                lib.llama_sampler_accept(slot.sampler, tok)
                return tok
        raise GenerationError("the grammar allows no token (it is not satisfiable)")

    def run(self, jobs: Iterable[BatchJob] | JobQueue) -> Iterator[BatchResult]:
        """Complete ``jobs``, yielding results as they finish (not in input order)."""
        if self._prefix_len == 0:
            raise GenerationError("set_prefix() must run before run()")
        lib = self._lib
        # A queue passed in (anything with popleft) is consumed in place, so a caller may
        # append retries mid-run or feed jobs lazily.
        pending: Any = jobs if hasattr(jobs, "popleft") else deque(jobs)
        free = list(range(self.n_parallel, 0, -1))
        active: list[_Slot] = []
        try:
            while pending or active:
                self._batch.n_tokens = 0
                # Refill free sequences with new jobs while the batch has room.
                while pending and free:
                    job = pending[0]
                    budget = self.n_batch - int(self._batch.n_tokens) - len(active)
                    if len(job.suffix) > budget and active:
                        break
                    if len(job.suffix) > self.n_batch:
                        raise GenerationError(f"prompt of {len(job.suffix)} tokens > n_batch")
                    pending.popleft()
                    seq = free.pop()
                    lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
                    lib.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
                    rng = np.random.default_rng(job.seed)
                    slot = _Slot(job, seq, self._sampler(job), rng, self._prefix_len, [])
                    slot.history = []
                    slot.started = time.perf_counter()
                    last = len(job.suffix) - 1
                    for j, tok in enumerate(job.suffix):
                        idx = self._add(tok, slot.pos, seq, j == last)
                        slot.pos += 1
                    slot.logit_index = idx
                    active.append(slot)
                # Next token of every sequence that is already generating.
                for slot in active:
                    if slot.logit_index < 0:
                        slot.logit_index = self._add(slot.last_token, slot.pos, slot.seq, True)
                        slot.pos += 1
                self._decode()
                still: list[_Slot] = []
                for slot in active:
                    tok = self._sample(slot)
                    slot.logit_index = -1
                    finish = self._step(slot, tok)
                    if finish is None:
                        still.append(slot)
                        continue
                    lib.llama_sampler_free(slot.sampler)
                    lib.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
                    free.append(slot.seq)
                    yield BatchResult(
                        slot.job.key,
                        b"".join(slot.pieces).decode("utf-8", errors="replace"),
                        len(slot.job.suffix),
                        slot.n_out,
                        finish,
                        time.perf_counter() - slot.started,
                    )
                active = still
        finally:
            for slot in active:
                lib.llama_sampler_free(slot.sampler)
                lib.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)

    def _step(self, slot: _Slot, tok: int) -> str | None:
        """Record token ``tok`` for ``slot``; return a finish reason or ``None`` to go on."""
        lib = self._lib
        slot.n_out += 1
        if lib.llama_vocab_is_eog(self._vocab, tok):
            return "stop"
        piece = self.piece(tok)
        slot.pieces.append(piece)
        slot.last_token = tok
        if slot.history is not None:
            if b"\n" in piece:
                # A new answer line is a new item's answer (grouped prompts): the penalty is
                # against looping within an answer, not against sharing words across items.
                slot.history.clear()
            elif self._is_word(tok):
                slot.history.append(tok)
        stop = slot.job.stop
        if stop is not None and stop(b"".join(slot.pieces).decode("utf-8", errors="ignore")):
            return "stop"
        if slot.n_out >= slot.job.max_tokens:
            return "length"
        return None

    def _is_word(self, tok: int) -> bool:
        """Whether a token carries letters or digits; separators (`` >``, `` |``) are never
        penalised for repeating, or the penalty would push answers to end early."""
        known = self._word_tokens.get(tok)
        if known is None:
            known = any(chr(c).isalnum() for c in self.piece(tok))
            self._word_tokens[tok] = known
        return known

    def close(self) -> None:
        """Free the C objects (also done at garbage collection)."""
        lib = self._lib
        if getattr(self, "_batch", None) is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            lib.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            lib.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> LlamaBatchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
