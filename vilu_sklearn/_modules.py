"""PyTorch modules of ViLU: the cross-attention head and its weighted loss.

Nothing here knows about scikit-learn; :class:`vilu_sklearn.ViLUClassifier` builds
these modules and trains them through skorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ViLUModule", "EncodedCandidates", "weighted_bce_loss", "failure_weight"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


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

    Two attention variants:

    ``"reference"`` (the authors' code)
        bias-free ``W_q`` and one ``W_kv`` shared by keys and values, both
        identity-initialised; ``s = logit_scale`` (CLIP's temperature).
    ``"paper"`` (the paper's equations)
        separate ``W_Q``, ``W_K``, ``W_V`` (default PyTorch initialisation),
        ``s = 1 / sqrt(d / n_heads)``, ``n_heads`` heads.

    While the projections are frozen (``keep_frozen=True``, or during the first
    ``n_iter_freeze_proj`` training iterations) they are bypassed: queries, keys
    and values are the embeddings themselves.

    The candidate projection is computed once per call (:meth:`encode_candidates`)
    and shared by all images: no (B, K, d) tensor is built; memory is
    O((B + K) d + B K).

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
        Widths of the hidden layers of the MLP.
    activation : {"relu", "leaky_relu", "gelu", "tanh"}, default="relu"
        Hidden-layer activation.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    n_iter_freeze_proj : int, default=0
        Number of training iterations during which the projections are bypassed.
    keep_frozen : bool, default=False
        Bypass the projections throughout (parameter-free attention).
    normalize : bool, default=True
        L2-normalise image and text embeddings inside the module.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import ViLUModule
    >>> module = ViLUModule(8, hidden_layer_sizes=(16,))
    >>> module(torch.randn(5, 8), torch.randn(3, 8)).shape
    torch.Size([5])
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
        n_iter_freeze_proj: int = 0,
        keep_frozen: bool = False,
        normalize: bool = True,
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
        self.n_iter_freeze_proj = int(n_iter_freeze_proj)
        self.keep_frozen = keep_frozen
        self.normalize = normalize
        self.n_iter: torch.Tensor
        self.register_buffer("n_iter", torch.zeros((), dtype=torch.long))

        self.q_proj: nn.Linear | None = None
        self.k_proj: nn.Linear | None = None
        self.v_proj: nn.Linear | None = None
        if use_attention:
            self.q_proj = nn.Linear(dim, dim, bias=False)
            self.k_proj = nn.Linear(dim, dim, bias=False)
            if attention == "reference":
                nn.init.eye_(self.q_proj.weight)
                nn.init.eye_(self.k_proj.weight)  # shared by keys and values
            else:
                self.v_proj = nn.Linear(dim, dim, bias=False)

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

    @property
    def needs_candidates(self) -> bool:
        """Whether the features use the candidate texts at all."""
        return self.use_attention or self.use_predicted_text

    def projections_bypassed(self) -> bool:
        """Whether queries, keys and values are currently the raw embeddings."""
        return self.keep_frozen or int(self.n_iter) < self.n_iter_freeze_proj

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x
        # scale-safe (|x| >= 1e20 or <= 1e-13): an exact power-of-two rescaling
        _, exponent = torch.frexp(x.detach().abs().amax(dim=-1, keepdim=True))
        top = int(math.log2(torch.finfo(x.dtype).max)) - 1
        return F.normalize(
            x * torch.exp2((-exponent).clamp(max=top).to(x.dtype)), dim=-1
        )

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
        texts: torch.Tensor | EncodedCandidates | None = None,
        *,
        return_correct: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Confidence logits for a batch of images.

        Parameters
        ----------
        img : Tensor of shape (B, d)
            Image embeddings.
        texts : Tensor of shape (K, d) or EncodedCandidates, default=None
            Candidate set shared by the batch. Only the visual-only head
            (``use_attention=False, use_predicted_text=False``) may omit it.
        return_correct : bool, default=False
            Also return, for caption mode where the candidates are the batch's
            own captions (K == B, caption ``i`` paired with image ``i``), whether
            each image retrieves its own caption (ties count as correct).

        Returns
        -------
        logits : Tensor of shape (B,)
            Logit of P(the VLM's prediction is correct).
        correct : Tensor of shape (B,), optional
            Only with ``return_correct=True``.
        """
        z_v = self._normalize(img)
        parts = [z_v]
        correct = None
        if self.needs_candidates or return_correct:
            if texts is None:
                raise ValueError(
                    "This ViLU head needs candidate text embeddings (texts)."
                )
            enc = (
                texts
                if isinstance(texts, EncodedCandidates)
                else self.encode_candidates(texts)
            )
            sims = z_v @ enc.texts.T  # (B, K) cosine similarities
            if return_correct:
                diag = torch.diagonal(sims)
                correct = (diag >= sims.max(dim=1).values).to(img.dtype)
            if self.use_attention:
                parts.append(self._attend(z_v, enc, sims))
            if self.use_predicted_text:
                parts.append(enc.texts[sims.argmax(dim=1)])
        if self.training:
            self.n_iter.add_(1)
        logits = self.mlp(torch.cat(parts, dim=1)).squeeze(-1)
        if return_correct:
            assert correct is not None
            return logits, correct
        return logits

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
            return torch.softmax(scores, dim=-1) @ enc.values
        # "paper": multi-head scaled dot-product attention, no output projection
        q = z_v if bypassed else self.q_proj(z_v)  # type: ignore[misc]
        B, K, h = z_v.shape[0], enc.keys.shape[0], self.n_heads
        dh = self.dim // h
        qh = q.reshape(B, h, dh).transpose(0, 1)  # (h, B, dh)
        kh = enc.keys.reshape(K, h, dh).transpose(0, 1)  # (h, K, dh)
        vh = enc.values.reshape(K, h, dh).transpose(0, 1)
        att = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(dh), dim=-1)
        return (att @ vh).transpose(0, 1).reshape(B, self.dim)


def failure_weight(y_correct: torch.Tensor, mode: str | float | None) -> torch.Tensor:
    """Weight of the failures of a mini-batch in the ViLU loss.

    ``"adaptive"`` is the paper's ``w = log(1 + acc / (1 - acc)) = -log(1 - acc)``
    with ``acc`` the accuracy of the VLM on the mini-batch; a number is a fixed
    weight; ``None`` means 1. A batch without failures gets weight 0 (it is
    unused), never inf; a batch without successes gets ``-log(1) = 0``.

    Examples
    --------
    >>> import torch
    >>> from vilu_sklearn._modules import failure_weight
    >>> round(float(failure_weight(torch.tensor([1.0, 1.0, 1.0, 0.0]), "adaptive")), 4)
    1.3863
    >>> float(failure_weight(torch.ones(4), "adaptive"))
    0.0
    """
    if mode is None:
        return torch.ones((), dtype=y_correct.dtype, device=y_correct.device)
    if isinstance(mode, str):
        acc = y_correct.mean()
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

    Successes have weight 1, failures the weight of :func:`failure_weight`;
    optional per-sample weights multiply both. The mean is taken over the batch.

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
    w_fail = failure_weight(y_correct, failure_weight_mode).to(logits.dtype)
    weights = y_correct + (1 - y_correct) * w_fail
    if sample_weight is not None:
        weights = weights * sample_weight.to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(logits, y_correct, reduction="none")
    return (weights * losses).mean()
