"""Batched forward passes over a fish-speech ``DualARTransformer``, with per-slot KV-cache positions.

Upstream's ``forward_generate`` decodes one sequence with one shared ``input_pos``. Here many sequences
("slots") share each step, each at its own position. The maths is composed from the model's own modules
and weights: its embeddings, each ``TransformerBlock``'s ``attention.wqkv``/``attention.wo``/q-k norms,
``attention_norm``, ``ffn_norm`` and ``feed_forward``, its final norms and heads, its RoPE tables
(``freqs_cis``) and ``apply_rotary_emb``. Only the attention call itself (which positions a query may
see) is ours, because that is exactly what differs between slots.

Shapes: ``C`` codebooks; a frame is ``C + 1`` ints (token id, then the C codes); ``S`` slots; ``T`` slot
capacity (positions). All functions are pure tensor code with no host synchronisation, so a decode step
over a fixed (batch, kv length) can be captured in a CUDA graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from fish_speech.models.text2semantic.llama import Attention, DualARTransformer, TransformerBlock, apply_rotary_emb

from voicereel.engine.compile_limits import allow_graphs_per_function
from voicereel.engine.prompt import TokenSpace
from voicereel.engine.sampling import sample_tensors


@dataclass
class SlowCache:
    """KV cache of the slow transformer: ``[layers, S, kv_heads, T, head_dim]`` for keys and values."""

    k: torch.Tensor
    v: torch.Tensor

    @property
    def capacity(self) -> int:
        return int(self.k.shape[3])


@dataclass
class FastCache:
    """KV cache of the fast transformer within one frame, ``[fast_layers, rows, heads, C, head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor


def _rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Upstream's ``apply_rotary_emb`` with a different position per (row, token).

    ``x`` ``[B, L, H, D]``, ``freqs`` ``[B, L, D/2, 2]``. Upstream broadcasts one table row per token over
    the batch, so fold batch into its sequence axis, where each token gets its own row.
    """
    b, length, heads, dim = x.shape
    rotated = apply_rotary_emb(x.reshape(1, b * length, heads, dim), freqs.reshape(b * length, dim // 2, 2))
    return rotated.view(b, length, heads, dim)


def _project_qkv(
    attention: Attention, x: torch.Tensor, freqs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries ``[B, H, L, D]`` and keys/values ``[B, KV, L, D]`` of ``x`` ``[B, L, dim]`` (RoPE applied)."""
    b, length, _ = x.shape
    head_dim = attention.head_dim
    q_size, kv_size = attention.n_head * head_dim, attention.n_local_heads * head_dim
    q, k, v = attention.wqkv(x).split([q_size, kv_size, kv_size], dim=-1)
    q = q.view(b, length, attention.n_head, head_dim)
    k = k.view(b, length, attention.n_local_heads, head_dim)
    v = v.view(b, length, attention.n_local_heads, head_dim)
    if attention.attention_qk_norm:
        q, k = attention.q_norm(q), attention.k_norm(k)
    q, k = _rope(q, freqs), _rope(k, freqs)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def flash_applies(q: torch.Tensor) -> bool:
    """Whether FlashAttention runs queries like ``q``: CUDA, half precision, head size a multiple of 8 up to 256."""
    head_dim = q.shape[-1]
    return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and head_dim % 8 == 0 and head_dim <= 256


def _attend(
    attention: Attention,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    flash: bool = False,
) -> torch.Tensor:
    """Grouped-query attention and the output projection; returns ``[B, L, dim]``.

    ``flash`` (causal, no mask): torch's FlashAttention kernel, called directly (it takes fewer key/value heads than
    query heads as they are). Left to choose, torch 2.11 on an H100 times as cuDNN's kernel does, which builds a plan
    for every new shape: a prefill pass of a (rows, length) not seen before cost ~50 ms more than its repeats (72-90
    vs 20-47 ms), and prompt lengths vary, so most passes are new (perf/gpu/profile_prefill.py, thirteenth session).
    Not through ``sdpa_kernel``: that switches backends for the whole process, and the in-process codec's attention
    (masked) has no flash kernel.
    """
    if flash:
        if mask is not None or not causal:
            raise ValueError("the flash path is causal attention without a mask")
        y = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True)[0]
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
    b, _, length, _ = q.shape
    return attention.wo(y.transpose(1, 2).reshape(b, length, attention.n_head * attention.head_dim))


def _block_tail(block: TransformerBlock, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """Residual around attention, then the block's feed-forward with its residual."""
    h = x + attended
    return h + block.feed_forward(block.ffn_norm(h))


def _attend_one(
    attention: Attention, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Attention of one query per row ``q`` ``[B, H, 1, D]`` over ``keys``/``values`` ``[B, KV, T, D]``.

    The ``H / KV`` query heads that share a KV head become that head's query rows, so SDPA reads each KV
    head once instead of a copy repeated per query head (what ``enable_gqa`` does on the masked path).
    Same maths: head ``h`` attends KV head ``h // (H / KV)``, as upstream's ``repeat_interleave``.
    """
    b, heads, _, dim = q.shape
    kv_heads = keys.shape[1]
    grouped = q.reshape(b, kv_heads, heads // kv_heads, dim)
    y = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=mask)
    return attention.wo(y.reshape(b, 1, heads * dim))


def attend_used(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """One query per row over only the first ``lengths[b]`` cached positions of each row: FlashAttention's
    variable-length kernel reading the slot cache in place (CUDA, half precision; not yet used by the engine).

    ``q`` ``[B, KV, G, D]`` (the ``G`` query heads sharing KV head ``k`` as ``_attend_one`` folds them), ``keys`` and
    ``values`` ``[B, KV, T, D]`` with the positions contiguous per head (rows of a ``SlowCache`` layer), ``lengths``
    int32 ``[B]``. The kernel wants keys as ``[total, KV, D]`` with each sequence's positions consecutive; row ``b``
    of the cache, seen with a position stride of ``D`` and a head stride of ``T * D``, is exactly that sequence
    starting at ``b * KV * T``: the same storage, no copy, and a row's positions past its length are never read
    (the masked SDPA reads the whole bucket). Returns ``[B, KV, G, D]``.
    """
    batch, kv_heads, groups, dim = q.shape
    capacity = keys.shape[2]
    contiguous_rows = (kv_heads * capacity * dim, capacity * dim, dim, 1)
    if keys.stride() != contiguous_rows or values.stride() != contiguous_rows or values.shape != keys.shape:
        raise ValueError("attend_used reads cache rows in place: keys and values must be [B, KV, T, D] contiguous")
    span = (batch - 1) * kv_heads * capacity + capacity  # the rows' positions as one sequence axis (last row's end)
    flat_k = keys.as_strided((span, kv_heads, dim), (dim, capacity * dim, 1))
    flat_v = values.as_strided((span, kv_heads, dim), (dim, capacity * dim, 1))
    starts = torch.arange(batch + 1, device=q.device, dtype=torch.int32)
    out = torch.ops.aten._flash_attention_forward(
        q.reshape(batch, kv_heads * groups, dim),
        flat_k,
        flat_v,
        starts,
        starts * (kv_heads * capacity),
        1,
        capacity,
        0.0,
        False,
        False,
        scale=1.0 / math.sqrt(dim),
        seqused_k=lengths,
    )[0]
    return out.view(batch, kv_heads, groups, dim)


def decode_pre(block: TransformerBlock, x: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A block's work before its cache write, for one token per row ``x`` ``[B, 1, dim]``: q, k, v."""
    return _project_qkv(block.attention, block.attention_norm(x), freqs)


def decode_post(
    block: TransformerBlock,
    x: torch.Tensor,
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """A block's work after its cache write: attention over the cache prefix, output projection, FFN."""
    return _block_tail(block, x, _attend_one(block.attention, q, keys, values, mask))


def _attend_few(
    attention: Attention, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, visible: torch.Tensor
) -> torch.Tensor:
    """Attention of one query per row ``q`` ``[B, H, 1, D]`` over keys ``[B, KV, T, D]`` (``visible`` bool, broadcast
    against ``[B, KV, G, T]``: ``[T]`` or the slow mask ``[B, 1, 1, T]``), then the output projection; returns
    ``[B, 1, dim]``.

    Products and sums over the keys (float32, like SDPA's accumulation) instead of an SDPA call: compiled, they fuse
    into a couple of small kernels, where a fused-attention library call costs ~13 us for ten keys on an H200 (and
    ~23 us for one row over the slow cache). Head grouping as ``_attend_one`` (head ``h`` reads KV head
    ``h // (H / KV)``).
    """
    b, heads, _, dim = q.shape
    kv_heads = keys.shape[1]
    grouped = q.reshape(b, kv_heads, heads // kv_heads, 1, dim).float()
    scores = (grouped * keys[:, :, None].float()).sum(-1) * (1.0 / math.sqrt(dim))  # [B, KV, G, T]
    weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    y = (weights[..., None] * values[:, :, None].float()).sum(-2)  # [B, KV, G, D]
    return attention.wo(y.to(q.dtype).reshape(b, 1, heads * dim))


def decode_post_one_row(
    block: TransformerBlock,
    x: torch.Tensor,
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """``decode_post`` for a batch of one row, attention as products over the cache prefix (see ``_attend_few``).

    At one row the fused-attention call is a fixed cost per layer (28 a step), and the products compile into
    kernels inductor can size for the one row."""
    if mask is None:
        raise ValueError("decode_post_one_row needs the position mask")
    return _block_tail(block, x, _attend_few(block.attention, q, keys, values, mask))


def fast_position(
    layers: Sequence[TransformerBlock],
    cache_k: torch.Tensor,
    cache_v: torch.Tensor,
    x: torch.Tensor,
    index: torch.Tensor,
    freqs_table: torch.Tensor,
    norm: torch.nn.Module,
    head: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fast transformer at codebook position ``index`` (0-dim int64 tensor) for inputs ``x`` ``[B, fast_dim]``,
    reading rows ``[0, B)`` of the fast cache ``[fast_layers, S, KV, C, D]``; returns the head's logits ``[B, V]`` and
    the cache after this position (``[fast_layers, B, KV, C, D]``, new tensors: the input is never written).

    One pure function for every position and layer: the position is data, not a shape, so compiled it is one graph
    (per batch variant). Each layer's cache rows come out whole (the new key/value at ``index``, the others as
    given; ten positions are a few KiB a row) and attention covers all ``C`` positions with those after ``index``
    masked, so no shape depends on the position. Returning the cache instead of writing the input keeps the
    compiled code free of copies of the whole input (writing a view of it made inductor copy all of it).
    """
    batch = x.shape[0]
    positions = torch.arange(cache_k.shape[3], device=x.device)
    written = (positions == index)[:, None]  # [C, 1], broadcast over [B, KV, C, D]
    visible = positions <= index
    freqs = freqs_table.index_select(0, index.reshape(1))[None].expand(batch, -1, -1, -1)  # tensor[index] syncs
    h = x[:, None]
    new_k, new_v = [], []
    for layer, block in enumerate(layers):
        q, k, v = _project_qkv(block.attention, block.attention_norm(h), freqs)
        # narrow, not a slice: a slice's length is min(batch, slots), which the compiler cannot prove equal to batch
        keys = torch.where(written, k, cache_k[layer].narrow(0, 0, batch))
        values = torch.where(written, v, cache_v[layer].narrow(0, 0, batch))
        new_k.append(keys)
        new_v.append(values)
        h = _block_tail(block, h, _attend_few(block.attention, q, keys, values, visible))
    return F.linear(norm(h[:, 0]), head), torch.stack(new_k), torch.stack(new_v)


@dataclass(frozen=True)
class DecodeKernels:
    """The pure pieces of a decode step, eager or ``torch.compile``'d: the slow transformer's block halves (its cache
    writes stay outside them), the fast transformer's positions, the sampler."""

    pre: Any
    post: Any
    fast: Any
    sample: Any

    @classmethod
    def eager(cls) -> DecodeKernels:
        return cls(decode_pre, decode_post, fast_position, sample_tensors)

    @classmethod
    def compiled(cls, backend: str) -> DecodeKernels:
        """Compiled with dynamic shapes, so every (batch, kv) bucket reuses one graph per piece and block kind.

        Modules are inlined (their parameters become graph inputs), so one graph serves every layer.
        """
        _configure_dynamo()
        pieces = (decode_pre, decode_post, fast_position, sample_tensors)
        # fullgraph: a graph break (say, a tensor read on the host) fails at compile time, not inside a CUDA graph.
        return cls(*(torch.compile(fn, backend=backend, dynamic=True, fullgraph=True) for fn in pieces))

    @classmethod
    def one_row(cls, backend: str) -> DecodeKernels:
        """Pieces for decode steps of exactly one row (a single stream), compiled apart from the any-batch ones.

        Their shapes are static but for the sampled vocabulary (two sizes), so
        inductor sees matrix-vector products: with ``coordinate_descent_tuning`` it lowers each into a reduction
        kernel fused with the pointwise work around it (norms, RoPE, residuals, SiLU) instead of a cuBLAS call plus
        separate kernels, and tunes those kernels for the one row. The slow transformer's attention becomes
        products over the whole slot (``decode_post_one_row``). One graph per piece serves every kv bucket and layer.
        """
        _configure_dynamo()
        options: dict[str, str | int | bool | Callable[..., Any]] | None = None
        if backend == "inductor":
            options = {"coordinate_descent_tuning": True}

        def compiled(fn: Any, dynamic: dict[int, tuple[int, ...]]) -> OneRow:
            # dynamic=None: static shapes but for the dimensions OneRow marks dynamic
            return OneRow(torch.compile(fn, backend=backend, dynamic=None, fullgraph=True, options=options), dynamic)

        return cls(
            compiled(decode_pre_one_row, {}),
            compiled(decode_post_one_row, {}),  # attends the whole slot: static too
            compiled(fast_position_one_row, {}),
            compiled(sample_tensors_one_row, {0: (1,), 9: (0,)}),  # logits, vocab hash: vocabulary
        )


def _configure_dynamo() -> None:
    import torch.fx.experimental._config as fx_config

    # Size 1 (batch 1, one cached codebook) would otherwise get graphs of its own: fewer graphs to compile.
    if hasattr(fx_config, "backed_size_oblivious"):
        fx_config.backed_size_oblivious = True
    # Without this, sizes that happen to be equal when a piece is first traced (batch 2 and the RoPE pair,
    # batch 8 and the KV heads) are assumed equal forever, and every other batch bucket recompiles.
    fx_config.use_duck_shape = False
    # Floats (the norms' epsilon) as constants, not symbols: as symbols, tracing a piece restarted once it reached the
    # norm (a float it must specialise), so each such piece was traced twice: on an H100 the restarted traces took
    # 10.4 s of the 46 s compile warm-up (perf/gpu/profile_warm_up.py, fourteenth session). Specialised, the warm-up
    # took 57.6 s instead of 63.1 s on one H100 (fifteenth session, same script, variants cold and float-symbols).
    torch._dynamo.config.specialize_float = True
    allow_graphs_per_function()


# The one-row pieces are functions of their own (dynamo keeps compiled graphs per code object, so the one-row graphs
# never sit among the any-batch ones); each is the shared piece, inlined when traced.
def decode_pre_one_row(block: TransformerBlock, x: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return decode_pre(block, x, freqs)


def fast_position_one_row(*args: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return fast_position(*args)


def sample_tensors_one_row(*args: Any) -> torch.Tensor:
    return sample_tensors(*args)


class OneRow:
    """Calls a compiled piece with the dimensions ``dynamic`` names (argument index -> dims) marked dynamic, so
    dynamo traces them as sizes while every other dimension stays static. Marking is cheap and idempotent: it
    matters only when dynamo traces."""

    def __init__(self, fn: Any, dynamic: dict[int, tuple[int, ...]]) -> None:
        self.fn = fn
        self.dynamic = dynamic

    def __call__(self, *args: Any) -> Any:
        import torch._dynamo

        for index, dims in self.dynamic.items():
            torch._dynamo.mark_dynamic(args[index], dims)
        return self.fn(*args)


class BatchedDualAR:
    """A loaded ``DualARTransformer`` seen as batched prefill/decode functions over slot caches.

    ``allow_end`` keeps ``<|im_end|>`` in the slow head's choices; a benchmark checkpoint turns it off so
    every request runs to its frame budget. ``residual_size`` is how many entries of the fast head are
    valid residual codes (the codec's residual codebooks; upstream uses 1024).
    """

    def __init__(
        self,
        model: DualARTransformer,
        residual_size: int = 1024,
        allow_end: bool = True,
        compile_backend: str | None = None,
        one_row: bool = False,
        prefill_attention: str = "auto",
    ) -> None:
        config = model.config
        if prefill_attention not in ("auto", "flash"):
            raise ValueError(f"prefill_attention is auto or flash, not {prefill_attention!r}")
        # "flash": prefills attend through FlashAttention where it applies (``flash_applies``), else torch's choice.
        self.prefill_attention = prefill_attention
        # torch.compile the decode pieces (``"inductor"`` on a GPU): fewer, fused kernels per step.
        self.kernels = DecodeKernels.compiled(compile_backend) if compile_backend else DecodeKernels.eager()
        # With ``one_row`` (and a compile backend): steps of one row use pieces compiled for exactly one row.
        self.one_row_kernels = DecodeKernels.one_row(compile_backend) if compile_backend and one_row else None
        self.model = model
        self.config: Any = config
        self.tokens = TokenSpace.from_tokenizer(model.tokenizer)
        self.num_codebooks = int(config.num_codebooks)
        self.codebook_size = int(config.codebook_size)
        if self.tokens.num_semantic > self.codebook_size:
            raise ValueError("more semantic tokens than entries in the first codebook")
        self.residual_size = min(residual_size, self.codebook_size)
        self.allow_end = allow_end
        weight = model.embeddings.weight if config.tie_word_embeddings else model.output.weight
        head_ids = list(range(self.tokens.semantic_begin_id, self.tokens.semantic_begin_id + self.tokens.num_semantic))
        if allow_end:
            head_ids.append(self.tokens.im_end_id)
        # The slow head restricted to the tokens generation may produce: semantic ids (+ im_end). Row i of
        # the restricted logits is semantic code i; row num_semantic is the end token.
        self.head_weight = weight.detach()[torch.tensor(head_ids, device=weight.device)].clone()
        self.device = weight.device
        self.dtype = weight.dtype
        # Codebook positions as 0-dim tensors of their own (no views: compiled pieces would guard on the offset).
        self.positions = [torch.tensor(index, device=self.device) for index in range(self.num_codebooks)]
        self.fast_head_weight = model.fast_output.weight.detach()[: self.residual_size]
        self.codebook_offsets = (
            torch.arange(self.num_codebooks, device=self.device, dtype=torch.long) * self.codebook_size
        )

    def kernels_for(self, batch: int) -> DecodeKernels:
        """The pieces a step of ``batch`` rows runs: the one-row ones for a single row when there are any."""
        if batch == 1 and self.one_row_kernels is not None:
            return self.one_row_kernels
        return self.kernels

    def use_eager(self) -> None:
        """Run every step with the eager pieces (after compiling failed)."""
        self.kernels = DecodeKernels.eager()
        self.one_row_kernels = None

    # --- caches ----------------------------------------------------------------------------------------

    def new_slow_cache(self, slots: int, capacity: int) -> SlowCache:
        if capacity > self.config.max_seq_len:
            raise ValueError(f"slot capacity {capacity} exceeds the model's max_seq_len {self.config.max_seq_len}")
        shape = (self.config.n_layer, slots, self.config.n_local_heads, capacity, self.config.head_dim)
        return SlowCache(
            torch.zeros(shape, device=self.device, dtype=self.dtype),
            torch.zeros(shape, device=self.device, dtype=self.dtype),
        )

    def new_fast_cache(self, slots: int) -> FastCache:
        config = self.config
        shape = (config.n_fast_layer, slots, config.fast_n_local_heads, self.num_codebooks, config.fast_head_dim)
        return FastCache(
            torch.zeros(shape, device=self.device, dtype=self.dtype),
            torch.zeros(shape, device=self.device, dtype=self.dtype),
        )

    # --- slow transformer ------------------------------------------------------------------------------

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Input embeddings of frames ``[B, C + 1, L]`` -> ``[B, L, dim]``, as upstream's forward_generate.

        Codebook embeddings count only where the token is semantic (upstream zeroes them elsewhere), and
        are scaled when the config says ``scale_codebook_embeddings``.
        """
        model = self.model
        tokens = frames[:, 0]
        codes = frames[:, 1:] + self.codebook_offsets[None, :, None]
        code_sum = model.codebook_embeddings(codes).sum(dim=1)
        begin = self.tokens.semantic_begin_id
        is_semantic = (tokens >= begin) & (tokens < begin + self.tokens.num_semantic)
        x = model.embeddings(tokens) + code_sum * is_semantic[..., None].to(code_sum.dtype)
        if self.config.scale_codebook_embeddings:
            x = torch.where(is_semantic[..., None], x / math.sqrt(self.num_codebooks + 1), x)
        return x

    def prefill(self, cache: SlowCache, slot: int, prompt: torch.Tensor) -> torch.Tensor:
        """Run the prompt ``[C + 1, L]`` of one slot from position 0 (``prefill_many`` of one prompt)."""
        return self.prefill_many(cache, torch.tensor([slot], device=self.device), [prompt])

    def prefill_many(self, cache: SlowCache, slots: torch.Tensor, prompts: list[torch.Tensor]) -> torch.Tensor:
        """Run several prompts ``[C + 1, L_i]`` together, each from position 0 of its slot ``slots[i]``.

        The prompts are right-padded to the longest; causal attention keeps every real token blind to the
        padding after it. The padding's keys and values land in each slot beyond its prompt, where the
        position mask hides them until decoding overwrites them. Returns the last real position's hidden
        state of each prompt ``[N, dim]`` (before the final norm).
        """
        lengths = [int(prompt.shape[1]) for prompt in prompts]
        longest = max(lengths)
        frames = torch.zeros((len(prompts), self.num_codebooks + 1, longest), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            frames[row, :, : prompt.shape[1]] = prompt
        x = self.embed(frames.to(self.device))
        freqs = self.model.freqs_cis[:longest][None].expand(len(prompts), -1, -1, -1)
        flash = self.prefill_attention == "flash"
        for index, block in enumerate(self.model.layers):
            q, k, v = _project_qkv(block.attention, block.attention_norm(x), freqs)
            cache.k[index][slots, :, :longest] = k
            cache.v[index][slots, :, :longest] = v
            x = _block_tail(block, x, _attend(block.attention, q, k, v, None, True, flash and flash_applies(q)))
        last = torch.tensor(lengths, device=self.device) - 1
        return x[torch.arange(len(prompts), device=self.device), last]

    def decode_slow(
        self, cache: SlowCache, frames: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor, kv_len: int
    ) -> torch.Tensor:
        """One token for each of the first ``B`` slots: frame ``[B, C + 1]`` goes to position ``positions[b]``.

        ``rows`` is ``arange(B)`` (kept by the caller so CUDA graphs see a static tensor); ``kv_len`` bounds
        the attended cache prefix and must exceed every position. Returns hidden states ``[B, dim]``.
        """
        batch = frames.shape[0]
        kernels = self.kernels_for(batch)
        # One-row pieces attend the whole slot (later positions masked): their shapes stay static, where a bucketed
        # length equal to the capacity made dynamo specialise the marked-dynamic length (seen on an H100).
        span = cache.capacity if kernels is self.one_row_kernels else kv_len
        x = self.embed(frames[:, :, None])
        freqs = self.model.freqs_cis[positions][:, None]
        visible = torch.arange(span, device=positions.device)[None, :] <= positions[:, None]
        mask = visible[:, None, None, :]
        pre, post = kernels.pre, kernels.post
        for index, block in enumerate(self.model.layers):
            q, k, v = pre(block, x, freqs)
            keys, values = cache.k[index, :batch], cache.v[index, :batch]
            keys[rows, :, positions] = k[:, :, 0]
            values[rows, :, positions] = v[:, :, 0]
            x = post(block, x, q, keys[:, :, :span], values[:, :, :span], mask)
        return x[:, 0]

    def slow_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Restricted slow-head logits ``[B, num_semantic (+1)]`` from hidden states ``[B, dim]``."""
        return F.linear(self.model.norm(hidden), self.head_weight)

    # --- fast transformer ------------------------------------------------------------------------------

    def fast_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """The fast transformer's first input: the slow hidden state projected to the fast width."""
        return self.model.fast_project_in(hidden)

    def fast_code_input(self, codes: torch.Tensor) -> torch.Tensor:
        """The fast transformer's input for a sampled code ``[B]``."""
        return self.model.fast_embeddings(codes)

    def fast_forward(self, cache: FastCache, x: torch.Tensor, index: int) -> tuple[torch.Tensor, FastCache]:
        """Codebook position ``index`` of the fast transformer for ``x`` ``[B, fast_dim]`` after the positions in rows
        ``[0, B)`` of ``cache``; returns the head's logits ``[B, residual_size]`` (those of codebook ``index`` for
        ``index`` >= 1; position 0, fed the projected slow hidden state, only starts the cache) and the cache after it.

        All rows are at the same codebook position, so the mask is a plain prefix. Position 0 reads nothing of the
        cache it is given (``sample_frame`` passes ``new_fast_cache`` of the batch's rows: zeros).
        """
        logits, k, v = self.kernels_for(x.shape[0]).fast(
            self.model.fast_layers,
            cache.k,
            cache.v,
            x,
            self.positions[index],
            self.model.fast_freqs_cis,
            self.model.fast_norm,
            self.fast_head_weight,
        )
        return logits, FastCache(k, v)
