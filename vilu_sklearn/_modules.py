"""PyTorch modules of ViLU: the cross-attention head and its weighted loss.

Nothing here knows about scikit-learn; :class:`vilu_sklearn.ViLUClassifier` builds
these modules and trains them through skorch.

Two forward paths give the same logits (to the rounding of the dtype):

* the dense path, used for training (gradients), computes the features
  ``[z_v ; z_t_alpha ; z_t_hat]`` and runs the MLP on them;
* the fast inference path (:meth:`ViLUModule.tabulate`, used for prediction)
  never builds ``z_t_alpha`` or ``z_t_hat``. The first MLP
  layer is linear in them, so its text blocks are tabulated once per candidate
  set, ``W1_hat t_k`` and ``W1_alpha v_k`` (K x H tables), and the first layer
  becomes ``W1_v z_v`` plus a gathered row plus attention weights times a table.
  The query projection is folded into the keys, ``(W_q z)·(W_k t) = z·(W_q^T W_k
  t)``; with identity projections the attention scores are the similarities.
  The posterior head folds likewise, and every product whose left operand is
  ``z_v`` (similarities, scores, posterior logits, ``W1_v z_v``) is one GEMM
  against a stacked table.
  Candidates whose softmax weight is below ``eps / K`` of the top one (``eps``
  of the dtype) are dropped when that leaves few, so the dropped mass is at most
  ``eps`` of the total: the truncation is exact to rounding.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ViLUModule",
    "EncodedCandidates",
    "CandidateTables",
    "weighted_bce_loss",
    "class_label_loss",
    "failure_weight",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}
# sparse attention pays when at most this share of the (rows x K) weights is kept
_SPARSE_SHARE = 1 / 8
_PROBE_ROWS = 64
# products with z_v share one GEMM up to this many output columns (measured on
# CPU: 3.5k columns run 4 % faster stacked, 20k columns 20 % slower)
_STACK_ROWS = 4096


def _full_precision(device_type: str) -> contextlib.AbstractContextManager[None]:
    """Suspend autocast: what runs inside keeps the dtype of its inputs."""
    return torch.autocast(device_type=device_type, enabled=False)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class EncodedCandidates(NamedTuple):
    """Candidate texts prepared once and reused by every image of a batch.

    Attributes
    ----------
    texts : Tensor of shape (K, d)
        The (normalised) candidate text embeddings, used for the VLM's own
        prediction and as the predicted text ``z_t_hat``.
    keys : Tensor of shape (K, d)
        Attention keys (projected texts).
    values : Tensor of shape (K, d)
        Attention values (projected texts).
    """

    texts: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor


class CandidateTables(NamedTuple):
    """A candidate set tabulated for the fast inference path.

    Built by :meth:`ViLUModule.tabulate`; valid for the weights it was built
    with (rebuild it after training). Every product whose left operand is the
    image embedding ``z_v`` takes its right operand from ``left``, so the fast
    path computes all of them in one GEMM, ``z_v @ left.T`` (one per block when
    ``left`` has more than 4096 rows, where that runs faster); ``texts``,
    ``score_keys`` and ``posterior_keys`` are views of ``left``.

    Attributes
    ----------
    texts : Tensor of shape (K, d)
        Normalised candidate texts: the similarities ``z_v · t_k`` (the VLM's
        prediction) are taken against them.
    score_keys : Tensor of shape (n_heads * K, d) or None
        Keys with the query projection and the attention temperature folded in,
        stacked by head: the attention scores are ``z_v @ score_keys.T``. None
        when the projections are the identity (one head): the scores are then
        ``score_scale`` times the similarities.
    score_scale : float
        Attention temperature (used when ``score_keys`` is None).
    hat : Tensor of shape (K, H) or None
        ``W1_hat t_k + b1``: first-layer block of the predicted text, with the
        first layer's bias. None without ``use_predicted_text``.
    alpha : Tensor of shape (n_heads * K, H) or None
        ``W1_alpha`` applied to the values, stacked by head: the attended-text
        block of the first layer is the attention weights times this table.
        None without ``use_attention``.
    bias : Tensor of shape (H,)
        First-layer bias (already in ``hat`` when that is present).
    posterior_keys, posterior_bias : Tensors of shape (K, d) and (K,), or None
        The :class:`PosteriorHead` folded per candidate: its logits are
        ``z_v @ posterior_keys.T + posterior_bias``. None without it, or when
        its image map has a hidden layer (then ``g = query(z_v) @ texts.T``,
        :meth:`PosteriorHead.query`).
    left : Tensor of shape (N, d)
        ``[texts; score_keys; posterior_keys; W1_v]`` (the blocks present):
        the right operands of all products with ``z_v``, ``W1_v`` being the
        first layer's image block.
    """

    texts: torch.Tensor
    score_keys: torch.Tensor | None
    score_scale: float
    hat: torch.Tensor | None
    alpha: torch.Tensor | None
    bias: torch.Tensor
    posterior_keys: torch.Tensor | None
    posterior_bias: torch.Tensor | None
    left: torch.Tensor


def softmax_times_table(
    scores: torch.Tensor,
    table: torch.Tensor,
    n_heads: int = 1,
    *,
    overwrite: bool = False,
) -> torch.Tensor:
    """``softmax(scores) @ table`` per row, skipping negligible candidates.

    Rows are ``(sample, head)`` pairs, sample-major; ``table`` stacks one
    (K, H) block per head. A candidate more than ``log(K / eps)`` below its
    row's top score (``eps`` of the scores' dtype) has a weight below
    ``eps / K`` of the top one, so all of them together carry less than
    ``eps`` of the row's mass: they are dropped (an embedding bag over the
    kept ones) when at most 1/8 of all weights are kept. Otherwise the dense
    product is taken. Either way the result equals the dense one to rounding.

    Parameters
    ----------
    scores : Tensor of shape (B * n_heads, K)
        Attention scores.
    table : Tensor of shape (n_heads * K, H)
        Per-candidate rows, stacked by head.
    n_heads : int, default=1
        Heads per sample.
    overwrite : bool, default=False
        Whether ``scores`` may be overwritten (saves a temporary).

    Returns
    -------
    out : Tensor of shape (B, H)
        Sum over heads of the attention-weighted table rows.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import softmax_times_table
    >>> scores = torch.tensor([[0.0, 100.0, 0.0], [1.0, 1.0, 1.0]])
    >>> softmax_times_table(scores, torch.eye(3))
    tensor([[0.0000, 1.0000, 0.0000],
            [0.3333, 0.3333, 0.3333]])
    """
    R, K = scores.shape
    B = R // n_heads
    margin = math.log(K / torch.finfo(scores.dtype).eps)
    probe = scores[:_PROBE_ROWS]  # a dense profile is recognised cheaply
    dense = (
        K == 1
        or int((probe >= probe.amax(dim=1, keepdim=True) - margin).sum())
        > 2 * _SPARSE_SHARE * probe.numel()
    )
    if not dense:
        top = scores.amax(dim=1, keepdim=True)
        keep = scores >= top - margin
        n_kept = keep.sum(dim=1)
        dense = int(n_kept.sum()) > _SPARSE_SHARE * R * K
    if dense and overwrite and n_heads == 1:  # normalise the (B, H) product
        weights = scores.sub_(scores.amax(dim=1, keepdim=True)).exp_()
        return (weights.to(table.dtype) @ table).div_(weights.sum(1, keepdim=True))
    if dense:
        weights = torch.softmax(scores, dim=1).reshape(B, n_heads * K)
        return weights.to(table.dtype) @ table
    rows, cols = keep.nonzero(as_tuple=True)  # row-major: grouped by sample
    w = torch.exp(_at_least_fp32(scores[rows, cols] - top[rows, 0]))
    total = torch.zeros(R, dtype=w.dtype, device=w.device).index_add_(0, rows, w)
    w = (w / total[rows]).to(table.dtype)
    if n_heads > 1:
        cols = cols + (rows % n_heads) * K
    per_sample = n_kept.reshape(B, n_heads).sum(dim=1)
    offsets = torch.cumsum(per_sample, 0) - per_sample
    return F.embedding_bag(cols, table, offsets, mode="sum", per_sample_weights=w)


class PosteriorHead(nn.Module):
    """Learned posterior over the candidates, read at the VLM's prediction.

    The VLM's zero-shot logits ``s * cos(z_v, z_t_k)`` are re-tempered and
    corrected by a learned bilinear term,
    ``g_k = tau * s * cos(z_v, z_t_k) + (A z_v + b) . (C z_t_k)``, and the head
    returns ``log p_hat - log(1 - p_hat)`` with ``p_hat = softmax(g)[k_hat]`` the
    corrected probability of the VLM's own prediction
    ``k_hat = argmax_k cos(z_v, z_t_k)``. ``tau`` starts at 1, ``A`` and ``b`` at
    0 and ``C`` at the identity, so at initialisation the head is exactly the
    logit of MSP (the VLM's maximum softmax probability at ``logit_scale``);
    training learns which visual neighbourhoods the text prompts misjudge, and
    can shrink ``tau`` where the VLM's softmax is uninformative (or
    ``logit_scale`` wrong), so the VLM's own confidence cannot crowd out the
    learned terms. Its output is added to the MLP's logit.

    Parameters
    ----------
    dim : int
        Embedding dimension d.
    logit_scale : float
        Temperature of the VLM's softmax (CLIP's is 100).
    hidden_size : int, default=0
        0: the image map ``z_v -> A z_v + b`` is linear. Otherwise it is a
        one-hidden-layer ReLU network ``A relu(H z_v + c) + b`` of this width
        (``A``, ``b`` still start at 0, so the head still starts at MSP).
    """

    def __init__(self, dim: int, logit_scale: float, hidden_size: int = 0) -> None:
        super().__init__()
        self.logit_scale = float(logit_scale)
        self.log_tau = nn.Parameter(torch.zeros(()))
        self.hidden = nn.Linear(dim, hidden_size) if hidden_size else None
        self.img = nn.Linear(hidden_size or dim, dim)
        nn.init.zeros_(self.img.weight)
        nn.init.zeros_(self.img.bias)
        # with a hidden layer the text side is left as is: a learned C on top
        # of A and the hidden layer (three factors) let the scores grow without
        # bound in training and lost 1.3 validation AUROC (docs/vilu.md)
        self.txt: nn.Linear | None = None
        if not hidden_size:
            self.txt = nn.Linear(dim, dim, bias=False)
            nn.init.eye_(self.txt.weight)

    def __setstate__(self, state: dict[str, object]) -> None:
        modules = state.get("_modules")
        if isinstance(modules, dict):  # pickled before the hidden layer existed
            modules.setdefault("hidden", None)
        super().__setstate__(state)

    def features(self, z_v: torch.Tensor) -> torch.Tensor:
        """Input of the image branch's last linear map: ``z_v`` or its hidden layer."""
        return z_v if self.hidden is None else torch.relu(self.hidden(z_v))

    def text_keys(self, texts: torch.Tensor) -> torch.Tensor:
        """``C t_k`` (the texts themselves when the image map has a hidden layer)."""
        return texts if self.txt is None else self.txt(texts)

    def forward(
        self, z_v: torch.Tensor, texts: torch.Tensor, sims: torch.Tensor
    ) -> torch.Tensor:
        """Logit of the corrected probability of the predicted candidate.

        Parameters
        ----------
        z_v : Tensor of shape (B, d)
            Normalised image embeddings.
        texts : Tensor of shape (K, d)
            Normalised candidate texts.
        sims : Tensor of shape (B, K)
            Cosine similarities ``z_v @ texts.T``.
        """
        return predicted_logit(self.candidate_logits(z_v, texts, sims), sims)

    def candidate_logits(
        self, z_v: torch.Tensor, texts: torch.Tensor, sims: torch.Tensor
    ) -> torch.Tensor:
        """The corrected logits ``g`` (B, K) over the candidates (fp32 or wider)."""
        with _full_precision(z_v.device.type):
            keys = self.text_keys(_at_least_fp32(texts))
            u = self.features(_at_least_fp32(z_v))
            return self.scale * sims + self.img(u) @ keys.T

    @property
    def scale(self) -> torch.Tensor:
        """``tau * logit_scale``: the temperature of the VLM's logits in ``g``."""
        return self.log_tau.exp() * self.logit_scale

    @torch.no_grad()
    def tabulate(self, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Fold a linear head into per-candidate keys and biases, once per set.

        With normalised ``z`` and ``t_k``, ``g_k = z . (tau s t_k + A^T C t_k)
        + b . (C t_k)``: returns the (K, d) keys ``tau s t_k + C t_k A`` and the
        (K,) biases ``b . C t_k``, so that ``g = z @ keys.T + biases``. None with
        a hidden layer, where :meth:`query` is cheaper than keys of its width.
        """
        if self.hidden is not None:
            return None
        with _full_precision(texts.device.type):
            t = _at_least_fp32(texts)
            ct = self.text_keys(t)
            keys = torch.addmm(t, ct, self.img.weight, beta=float(self.scale))
            return keys, ct @ self.img.bias

    def query(self, z_v: torch.Tensor) -> torch.Tensor:
        """``tau s z_v + A u + b``: ``g = query @ texts.T`` when ``C`` is absent."""
        assert self.txt is None
        with _full_precision(z_v.device.type):
            z = _at_least_fp32(z_v)
            return self.img(self.features(z)).add_(z, alpha=float(self.scale))


def predicted_logit(g: torch.Tensor, sims: torch.Tensor) -> torch.Tensor:
    """``log p - log(1 - p)`` of ``p = softmax(g)[argmax sims]``, row by row.

    Computed as ``g_hat - logsumexp(g_others)`` (exact, no cancellation), so
    it keeps ranking the images when the softmax saturates (a large
    ``logit_scale``). With a single candidate (``p = 1``) the logit is 100.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import predicted_logit
    >>> g = torch.log(torch.tensor([[0.75, 0.25]]))
    >>> predicted_logit(g, g)  # log(0.75 / 0.25)
    tensor([1.0986])
    """
    return _logit_at(g, sims.argmax(dim=1))


def _logit_at(
    g: torch.Tensor, k_hat: torch.Tensor, *, overwrite: bool = False
) -> torch.Tensor:
    """:func:`predicted_logit` at given indices; ``overwrite`` may clobber ``g``."""
    k_hat = k_hat.unsqueeze(1)
    own = g.gather(1, k_hat).squeeze(1)
    others = g.scatter_ if overwrite else g.scatter
    rest = torch.logsumexp(others(1, k_hat, float("-inf")), dim=-1)
    logit = own - rest
    # no cap otherwise: one at 100 made every image alike at logit_scale 1e4
    return torch.where(torch.isneginf(rest), logit.clamp(max=100.0), logit)


class ViLUModule(nn.Module):
    """ViLU head: image embedding + attended text + predicted text -> MLP -> logit.

    For image embeddings ``z_v`` (B, d) and a candidate set ``Z_t`` (K, d) shared
    by the batch (the class prompts, or in caption mode the batch's captions):

    * ``z_t_hat = Z_t[argmax_k cos(z_v, z_t_k)]`` is the text of the VLM's own
      prediction;
    * ``z_t_alpha = softmax(s * q K^T) V`` is an image-conditioned text
      representation, with the query from ``z_v`` and keys/values from ``Z_t``;
    * an MLP on ``[z_v ; z_t_alpha ; z_t_hat]`` outputs one logit of
      P(prediction correct).

    Two attention variants, both with identity-initialised projections (so that
    bypassing them while frozen is the same function as using them):

    ``"reference"`` (the authors' code)
        bias-free ``W_q`` and one ``W_kv`` shared by keys and values;
        ``s = logit_scale`` (CLIP's temperature).
    ``"paper"`` (the paper's equations)
        separate bias-free ``W_Q``, ``W_K``, ``W_V``,
        ``s = 1 / sqrt(d / n_heads)``, ``n_heads`` heads.

    While the projections are frozen (``keep_frozen=True``, or while the
    training loop sets ``projections_frozen``) they are bypassed: queries, keys
    and values are the embeddings themselves, and the projections get no
    gradient.

    Under autocast (CUDA bf16, or CPU bf16) the similarities, hence the
    predicted text and caption correctness, and the output logit are computed
    in float32 (or the module's float64).

    A :class:`CandidateTables` from :meth:`tabulate` (or
    :meth:`prepare_candidates`) passed instead of the texts selects the fast
    exact path described in the module docstring. Raw texts take it too in
    ``eval`` mode without gradients (and ``fast_inference=True``) when the batch
    has at least as many rows as candidates (caption groups), where tabulating
    them for one call costs no more than it saves; otherwise (training,
    validation batches smaller than K) the dense path is used. No (B, K, d)
    tensor is built on either path; memory is O((B + K) (d + H) + B K).

    Parameters
    ----------
    dim : int
        Embedding dimension d.
    attention : {"reference", "paper"}, default="reference"
        Attention variant, see above.
    n_heads : int, default=1
        Number of heads of the ``"paper"`` variant (must divide ``dim``).
    logit_scale : float, default=100.0
        Temperature of the ``"reference"`` attention (CLIP's is 100).
    use_attention : bool, default=True
        Include ``z_t_alpha`` in the features.
    use_predicted_text : bool, default=True
        Include ``z_t_hat`` in the features.
    hidden_layer_sizes : sequence of int, default=(512, 256, 128)
        Widths of the hidden layers of the MLP (empty: a linear head).
    activation : {"relu", "leaky_relu", "gelu", "tanh"}, default="relu"
        Hidden-layer activation.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    projections_frozen : bool, default=False
        Initial value of the attribute of the same name: bypass the projections
        until the training loop clears it.
    keep_frozen : bool, default=False
        Bypass the projections throughout (parameter-free attention).
    normalize : bool, default=True
        L2-normalise image and text embeddings inside the module.
    fast_inference : bool, default=True
        Use the fast exact path in ``eval`` mode without gradients; False
        forces the dense path everywhere.
    posterior_head : bool, default=False
        Add the logit of a :class:`PosteriorHead` (a learned correction of the
        VLM's softmax over the candidates, read at its prediction) to the MLP's
        logit. Not part of the paper; on by default in ``ViLUClassifier``.
    posterior_hidden_size : int, default=0
        Width of the hidden layer of the posterior head's image map (0: linear).

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import ViLUModule
    >>> module = ViLUModule(8, hidden_layer_sizes=(16,)).eval()
    >>> img, txt = torch.randn(5, 8), torch.randn(3, 8)
    >>> with torch.no_grad():
    ...     fast = module(img, txt)
    ...     module.fast_inference = False
    ...     dense = module(img, txt)
    >>> fast.shape, torch.allclose(fast, dense, atol=1e-5)
    (torch.Size([5]), True)
    """

    def __init__(
        self,
        dim: int,
        *,
        attention: str = "reference",
        n_heads: int = 1,
        logit_scale: float = 100.0,
        use_attention: bool = True,
        use_predicted_text: bool = True,
        hidden_layer_sizes: Sequence[int] = (512, 256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        projections_frozen: bool = False,
        keep_frozen: bool = False,
        normalize: bool = True,
        fast_inference: bool = True,
        posterior_head: bool = False,
        posterior_hidden_size: int = 0,
    ) -> None:
        super().__init__()
        if attention not in ("reference", "paper"):
            raise ValueError(
                f"attention must be 'reference' or 'paper'; got {attention!r}."
            )
        if attention == "paper" and dim % n_heads:
            raise ValueError(
                f"n_heads={n_heads} must divide the embedding dimension {dim}."
            )
        self.dim = dim
        self.attention = attention
        self.n_heads = n_heads if attention == "paper" else 1
        self.logit_scale = float(logit_scale)
        self.use_attention = use_attention
        self.use_predicted_text = use_predicted_text
        self.projections_frozen = bool(projections_frozen)
        self.keep_frozen = keep_frozen
        self.normalize = normalize
        self.fast_inference = fast_inference

        self.q_proj: nn.Linear | None = None
        self.k_proj: nn.Linear | None = None
        self.v_proj: nn.Linear | None = None
        if use_attention:
            self.q_proj = nn.Linear(dim, dim, bias=False)
            self.k_proj = nn.Linear(dim, dim, bias=False)  # reference: keys+values
            if attention == "paper":
                self.v_proj = nn.Linear(dim, dim, bias=False)
            for proj in (self.q_proj, self.k_proj, self.v_proj):
                if proj is not None:
                    nn.init.eye_(proj.weight)

        n_inputs = dim * (1 + int(use_attention) + int(use_predicted_text))
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        for width in hidden_layer_sizes:
            layers += [nn.Linear(n_inputs, width), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            n_inputs = width
        layers.append(nn.Linear(n_inputs, 1))
        self.mlp = nn.Sequential(*layers)
        self.posterior = (
            PosteriorHead(dim, logit_scale, posterior_hidden_size)
            if posterior_head
            else None
        )

    def __setstate__(self, state: dict[str, object]) -> None:
        # modules pickled before the freeze became a flag and the fast path existed
        buffers = state.get("_buffers", {})
        n_iter = buffers.pop("n_iter", None) if isinstance(buffers, dict) else None
        limit = state.pop("n_iter_freeze_proj", 0)
        if "projections_frozen" not in state:
            state["projections_frozen"] = n_iter is not None and int(n_iter) < int(
                limit  # type: ignore[call-overload]
            )
        state.setdefault("fast_inference", True)
        modules = state.get("_modules")
        if isinstance(modules, dict):
            modules.setdefault("posterior", None)
        super().__setstate__(state)

    @property
    def needs_candidates(self) -> bool:
        """Whether the features use the candidate texts at all."""
        return self.use_attention or self.use_predicted_text or bool(self.posterior)

    @property
    def attention_scale(self) -> float:
        """Temperature ``s`` of the attention scores."""
        if self.attention == "reference":
            return self.logit_scale
        return 1.0 / math.sqrt(self.dim // self.n_heads)

    def projections_bypassed(self) -> bool:
        """Whether queries, keys and values are currently the raw embeddings."""
        return bool(self.keep_frozen or self.projections_frozen)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x
        # scale-safe (|x| >= 1e20 or <= 1e-13): an exact power-of-two rescaling
        _, exponent = torch.frexp(x.detach().abs().amax(dim=-1, keepdim=True))
        top = int(math.log2(torch.finfo(x.dtype).max)) - 1
        return F.normalize(
            x * torch.exp2((-exponent).clamp(max=top).to(x.dtype)), dim=-1
        )

    def _similarities(self, z_v: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """Cosine similarities (B, K), in float32 even under autocast."""
        with _full_precision(z_v.device.type):
            return _at_least_fp32(z_v) @ _at_least_fp32(texts).T

    def _first_linear(self) -> nn.Linear:
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)
        return first

    def _first_layer_blocks(self) -> dict[str, torch.Tensor]:
        """The first layer's weight split by input block, in input order.

        ``"image"`` acts on ``z_v``, ``"attended"`` on ``z_t_alpha``,
        ``"predicted"`` on ``z_t_hat``; each is (H, d).
        """
        names = ["image"]
        names += ["attended"] if self.use_attention else []
        names += ["predicted"] if self.use_predicted_text else []
        weight = self._first_linear().weight
        return dict(zip(names, weight.split(self.dim, dim=1), strict=True))

    def _head(self, first: torch.Tensor) -> torch.Tensor:
        """Logits (B,) from the first layer's pre-activation; last layer in fp32."""
        if len(self.mlp) == 1:  # no hidden layer: the first layer is the last
            return _at_least_fp32(first).squeeze(-1)
        hidden = self.mlp[1:-1](first)
        with _full_precision(first.device.type):
            return self.mlp[-1](_at_least_fp32(hidden)).squeeze(-1)

    # ------------------------------------------------------------ dense path
    def encode_candidates(self, texts: torch.Tensor) -> EncodedCandidates:
        """Normalise and project the candidate texts, once for a whole batch.

        Parameters
        ----------
        texts : Tensor of shape (K, d)
            Candidate text embeddings.

        Returns
        -------
        encoded : EncodedCandidates
            Texts, keys and values, each (K, d).
        """
        texts = self._normalize(texts)
        if not self.use_attention or self.projections_bypassed():
            return EncodedCandidates(texts, texts, texts)
        assert self.k_proj is not None
        keys = self.k_proj(texts)
        values = self.v_proj(texts) if self.v_proj is not None else keys
        return EncodedCandidates(texts, keys, values)

    def forward(
        self,
        img: torch.Tensor,
        texts: torch.Tensor | EncodedCandidates | CandidateTables | None = None,
        *,
        return_correct: bool = False,
        return_candidate_logits: bool = False,
        return_parts: bool = False,
        own_offset: int = 0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Confidence logits for a batch of images.

        Parameters
        ----------
        img : Tensor of shape (B, d)
            Image embeddings.
        texts : Tensor of shape (K, d), EncodedCandidates or CandidateTables
            Candidate set shared by the batch. Only the visual-only head
            (``use_attention=False, use_predicted_text=False``) may omit it.
        return_correct : bool, default=False
            Also return, for caption mode where the candidates are the batch's
            own captions (K == B, caption ``i`` paired with image ``i``), whether
            each image retrieves its own caption (ties count as correct).
        return_candidate_logits : bool, default=False
            Also return the posterior head's logits over the candidates (B, K),
            for a loss on the true class (classification mode, training; needs
            ``posterior_head=True``). Exclusive with ``return_correct``.
        return_parts : bool, default=False
            Return the two terms of the logit instead of their sum, as a
            (B, 2) tensor ``[ViLU branch, posterior head]`` (training with
            ``branch_loss="separate"``; needs the posterior head and the dense
            path).
        own_offset : int, default=0
            With ``return_correct``: image ``i``'s own caption is candidate
            ``own_offset + i`` (data-parallel training, where the candidates are
            the captions of the global batch and this process holds a slice of
            its images).

        Returns
        -------
        logits : Tensor of shape (B,), or (B, 2) with ``return_parts``
            Logit of P(the VLM's prediction is correct).
        correct : Tensor of shape (B,), optional
            Only with ``return_correct=True``.
        """
        z_v = self._normalize(img)
        if not (self.needs_candidates or return_correct):
            return self._head(self.mlp[0](z_v))
        if texts is None:
            raise ValueError("This ViLU head needs candidate text embeddings (texts).")
        if isinstance(texts, torch.Tensor):
            # tables for this call alone pay when the batch has at least K rows
            fast = (
                self.fast_inference
                and not (self.training or torch.is_grad_enabled())
                and not (return_candidate_logits or return_parts)
                and z_v.shape[0] >= texts.shape[0]
            )
            texts = self.tabulate(texts) if fast else self.encode_candidates(texts)
        if (return_candidate_logits or return_parts) and (
            self.posterior is None or isinstance(texts, CandidateTables)
        ):
            raise ValueError(
                "return_candidate_logits and return_parts need the posterior "
                "head and the dense path (training)."
            )
        if isinstance(texts, CandidateTables):
            logits, sims = self._fast_forward(z_v, texts)
        else:
            sims = self._similarities(z_v, texts.texts)
            parts = [z_v]
            if self.use_attention:
                parts.append(self._attend(z_v, texts, sims))
            if self.use_predicted_text:
                parts.append(texts.texts[sims.argmax(dim=1)])
            logits = self._head(self.mlp[0](torch.cat(parts, dim=1)))
            if return_candidate_logits:
                assert self.posterior is not None
                g = self.posterior.candidate_logits(z_v, texts.texts, sims)
                return _combine(logits, predicted_logit(g, sims), return_parts), g
            if self.posterior is not None:
                post = self.posterior(z_v, texts.texts, sims)
                logits = _combine(logits, post, return_parts)
        if not return_correct:
            return logits
        own = torch.diagonal(sims, offset=own_offset)
        correct = (own >= sims.amax(dim=1)).to(logits.dtype)
        return logits, correct

    def _attend(
        self, z_v: torch.Tensor, enc: EncodedCandidates, sims: torch.Tensor
    ) -> torch.Tensor:
        bypassed = self.projections_bypassed()
        if self.attention == "reference":
            if bypassed:  # q K^T is the cosine matrix already computed
                scores = sims * self.logit_scale
            else:
                assert self.q_proj is not None
                scores = (self.q_proj(z_v) @ enc.keys.T) * self.logit_scale
            return torch.softmax(scores, dim=-1).to(enc.values.dtype) @ enc.values
        # "paper": multi-head scaled dot-product attention, no output projection
        q = z_v if bypassed else self.q_proj(z_v)  # type: ignore[misc]
        B, K, h = z_v.shape[0], enc.keys.shape[0], self.n_heads
        dh = self.dim // h
        qh = q.reshape(B, h, dh).transpose(0, 1)  # (h, B, dh)
        kh = enc.keys.reshape(K, h, dh).transpose(0, 1)  # (h, K, dh)
        vh = enc.values.reshape(K, h, dh).transpose(0, 1)
        att = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(dh), dim=-1)
        return (att.to(vh.dtype) @ vh).transpose(0, 1).reshape(B, self.dim)

    # ------------------------------------------------------------- fast path
    def prepare_candidates(
        self, texts: torch.Tensor
    ) -> CandidateTables | EncodedCandidates:
        """What :meth:`forward` needs of a candidate set, prepared for reuse.

        :meth:`tabulate` with ``fast_inference`` (for ``eval`` mode without
        gradients), else :meth:`encode_candidates`.
        """
        if self.fast_inference:
            return self.tabulate(texts)
        return self.encode_candidates(texts)

    def _projection_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W_q, W_k, W_v)``, each (d, d); identities while bypassed."""
        assert self.q_proj is not None and self.k_proj is not None
        w_q, w_k = self.q_proj.weight, self.k_proj.weight
        w_v = self.v_proj.weight if self.v_proj is not None else w_k
        if self.projections_bypassed():
            eye = torch.eye(self.dim, dtype=w_q.dtype, device=w_q.device)
            return eye, eye, eye
        return w_q, w_k, w_v

    @torch.no_grad()
    def tabulate(self, texts: torch.Tensor) -> CandidateTables:
        """Prepare a candidate set for the fast inference path.

        Costs about ``K d (2 d + 2 H)`` multiply-adds, once per candidate set
        (H the first hidden width); the tables hold ``K (d + 2 H)`` numbers per
        head.

        Parameters
        ----------
        texts : Tensor of shape (K, d)
            The candidate set, normalised inside when ``normalize=True``.

        Returns
        -------
        tables : CandidateTables
            To pass to :meth:`forward` in place of ``texts``.
        """
        with _full_precision(texts.device.type):
            t = self._normalize(texts.to(self._first_linear().weight.dtype))
            blocks = self._first_layer_blocks()
            bias = self._first_linear().bias
            hat = None
            if self.use_predicted_text:
                hat = torch.addmm(bias, t, blocks["predicted"].T)
            score_keys, alpha = None, None
            if self.use_attention:
                score_keys, alpha = self._attention_tables(t, blocks["attended"])
            folded = None if self.posterior is None else self.posterior.tabulate(t)
            post_keys, post_bias = (None, None) if folded is None else folded
            parts = [t, score_keys, post_keys, blocks["image"]]
            left = torch.cat([p for p in parts if p is not None])
        _, score_keys, post_keys, _ = _split_like(left, parts)  # views, no copies
        return CandidateTables(
            left[: len(t)],
            score_keys,
            self.attention_scale,
            hat,
            alpha,
            bias,
            post_keys,
            post_bias,
            left,
        )

    def _attention_tables(
        self, t: torch.Tensor, w_alpha: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Score keys (or None for identity) and the attended-text table."""
        w_q, w_k, w_v = self._projection_weights()
        h, dh = self.n_heads, self.dim // self.n_heads
        eye = torch.eye(self.dim, dtype=t.dtype, device=t.device)
        identity = h == 1 and torch.equal(w_q, eye) and torch.equal(w_k, eye)
        keys, values = t @ w_k.T, t @ w_v.T
        score_keys = None
        if not identity:  # scores = z . (W_q,h^T k_h) s, one (K, d) block per head
            score_keys = torch.cat(
                [
                    keys[:, i * dh : (i + 1) * dh] @ w_q[i * dh : (i + 1) * dh]
                    for i in range(h)
                ]
            ).mul_(self.attention_scale)
        alpha = torch.cat(
            [
                values[:, i * dh : (i + 1) * dh] @ w_alpha[:, i * dh : (i + 1) * dh].T
                for i in range(h)
            ]
        )
        return score_keys, alpha

    def _fast_forward(
        self, z_v: torch.Tensor, tables: CandidateTables
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B,) and similarities (B, K) from the tables.

        ``z_v @ tables.left.T`` gives the similarities, the attention scores,
        the posterior logits and the first layer's image block at once (one
        GEMM, or one per block for very wide candidate sets); the
        first layer adds the predicted text's row of ``hat`` and the attention
        weights times ``alpha`` (no ``z_t_alpha`` or ``z_t_hat`` is built).
        """
        B, K = z_v.shape[0], tables.texts.shape[0]
        blocks = [tables.texts, tables.score_keys, tables.posterior_keys]
        blocks.append(tables.left[-tables.bias.shape[0] :])  # W1_v
        with _full_precision(z_v.device.type):
            z = _at_least_fp32(z_v)
            if len(tables.left) <= _STACK_ROWS:  # one GEMM
                outs = _split_like(z @ tables.left.T, blocks, dim=1)
            else:  # a very wide output runs slower than its blocks
                outs = [None if b is None else z @ b.T for b in blocks]
        sims, scores, g, first = outs
        assert sims is not None and first is not None
        k_hat = sims.max(dim=1).indices  # first maximum, as argmax
        if tables.hat is not None:  # W1_hat z_t_hat + b1
            first = tables.hat.index_select(0, k_hat).add_(first)
        else:
            first = first + tables.bias
        if tables.alpha is not None:
            if scores is None:
                scores = sims * tables.score_scale
            scores = scores.reshape(B * self.n_heads, K)
            first.add_(
                softmax_times_table(scores, tables.alpha, self.n_heads, overwrite=True)
            )
        logits = self._head(first)
        if self.posterior is not None:
            with _full_precision(z_v.device.type):
                if g is not None:  # folded keys
                    assert tables.posterior_bias is not None
                    g = g.add_(tables.posterior_bias)
                else:  # hidden layer: its query against the texts
                    g = self.posterior.query(z_v) @ tables.texts.T
                logits = logits + _logit_at(g, k_hat, overwrite=True)
        return logits, sims


def _combine(branch: torch.Tensor, post: torch.Tensor, parts: bool) -> torch.Tensor:
    """The logit ``branch + post``, or both terms as (B, 2) columns."""
    if parts:
        dtype = torch.promote_types(branch.dtype, post.dtype)
        return torch.stack([branch.to(dtype), post.to(dtype)], dim=1)
    return branch + post


def _split_like(
    stacked: torch.Tensor, parts: Sequence[torch.Tensor | None], dim: int = 0
) -> list[torch.Tensor | None]:
    """Views of ``stacked`` in place of the ``parts`` it concatenates on ``dim``."""
    views = iter(stacked.split([len(p) for p in parts if p is not None], dim=dim))
    return [None if p is None else next(views) for p in parts]


def failure_weight(
    y_correct: torch.Tensor,
    mode: str | float | None,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weight of the failures of a mini-batch in the ViLU loss.

    ``"adaptive"`` is the paper's ``w = log(1 + acc / (1 - acc)) = -log(1 - acc)``
    with ``acc`` the accuracy of the VLM on the mini-batch, weighted by
    ``sample_weight`` when given; a number is a fixed weight; ``None`` means 1.
    A batch without failures gets weight 0 (it is unused), never inf; a batch
    without successes gets ``-log(1) = 0``.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import failure_weight
    >>> round(float(failure_weight(torch.tensor([1.0, 1.0, 1.0, 0.0]), "adaptive")), 4)
    1.3863
    >>> float(failure_weight(torch.ones(4), "adaptive"))
    0.0
    >>> y, sw = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])
    >>> round(float(failure_weight(y, "adaptive", sw)), 4)  # weighted acc 0.75
    1.3863
    """
    if mode is None:
        return torch.ones((), dtype=y_correct.dtype, device=y_correct.device)
    if isinstance(mode, str):
        if sample_weight is None:
            acc = y_correct.mean()
        else:
            sw = sample_weight.to(y_correct.dtype)
            acc = (sw * y_correct).sum() / sw.sum().clamp_min(1e-12)
        # clamp keeps the log finite; the where() zeroes the unused weight (no sync)
        w = -torch.log1p(-torch.clamp(acc, max=1.0 - 1e-6))
        return torch.where(acc >= 1, torch.zeros_like(w), w)
    return torch.full((), float(mode), dtype=y_correct.dtype, device=y_correct.device)


def weighted_bce_loss(
    logits: torch.Tensor,
    y_correct: torch.Tensor,
    *,
    failure_weight_mode: str | float | None = "adaptive",
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """ViLU's weighted binary cross-entropy on the logit of P(correct).

    Successes have weight 1, failures the weight of :func:`failure_weight`
    (whose adaptive accuracy is weighted by ``sample_weight``); optional
    per-sample weights multiply both. The mean is taken over the batch.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import weighted_bce_loss
    >>> loss = weighted_bce_loss(torch.zeros(2), torch.tensor([1.0, 0.0]),
    ...                          failure_weight_mode=None)
    >>> round(float(loss), 4)  # log(2)
    0.6931
    """
    y_correct = y_correct.to(logits.dtype)
    if sample_weight is not None:
        sample_weight = sample_weight.to(logits.dtype)
    w_fail = failure_weight(y_correct, failure_weight_mode, sample_weight)
    weights = y_correct + (1 - y_correct) * w_fail.to(logits.dtype)
    if sample_weight is not None:
        weights = weights * sample_weight
    losses = F.binary_cross_entropy_with_logits(logits, y_correct, reduction="none")
    return (weights * losses).mean()


def class_label_loss(
    candidate_logits: torch.Tensor,
    labels: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the posterior head's candidate logits on the true classes.

    The auxiliary loss of a fit with ``labels``: it teaches the posterior head
    which candidate each image really shows, also for the VLM's failures (where
    ``y_correct`` only says which candidate it is not). Mean over the batch,
    optionally weighted per sample.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import class_label_loss
    >>> g = torch.zeros(2, 4)
    >>> round(float(class_label_loss(g, torch.tensor([0, 3]))), 4)  # log(4)
    1.3863
    """
    losses = F.cross_entropy(candidate_logits.float(), labels, reduction="none")
    if sample_weight is not None:
        losses = losses * sample_weight.to(losses.dtype)
    return losses.mean()
