"""ViLUClassifier: the ViLU failure predictor as a scikit-learn estimator."""

from __future__ import annotations

import functools
import math
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions

from . import _net
from ._base import BaseFailurePredictor, FitInputs, check_candidate_texts
from ._candidates import class_agnostic_scores, unseen_candidates
from ._constraints import (
    Device,
    NumberInterval,
    PositiveIntSequence,
    positive_int,
    positive_real,
)
from ._data import BatchLoader, EmbeddingDataset, IndexSplit
from ._distributed import (
    AcceleratedViLUNet,
    accelerator_for,
    check_training_setup,
    checkpoint_callbacks,
    plain_net,
    start_checkpoint,
    stream_kwargs,
)
from ._modules import CandidateTables, EncodedCandidates, ViLUModule
from ._net import (
    OPTIMIZERS,
    TrainResult,
    ValidAUROC,
    ViLUNet,
    autocast,
    log_sink,
    resolve_device,
    train_net,
    training_callbacks,
    uses_autocast,
)
from ._persistence import register_estimator
from ._validation import check_float32_range
from ._zero_shot import _predict_argmax, check_class_labels

__all__ = [
    "LABEL_DISAGREEMENT_LIMIT",
    "REFERENCE_PARAMS",
    "UnseenCandidatesWarning",
    "ViLUClassifier",
    "check_labels_agree",
]


class UnseenCandidatesWarning(UserWarning):
    """Candidate texts at prediction that ``fit`` never saw (``unseen_candidates``)."""


#: The paper-faithful head and the authors' CIFAR-10 training recipe
#: (``scripts/train_vilu_cifar10.sh`` of the reference code), shortened from 800
#: to 60 epochs: ``ViLUClassifier(**REFERENCE_PARAMS)``. The reference freezes
#: the projections for 1000 iterations of 128 rows (about 2.6 epochs of CIFAR-10).
REFERENCE_PARAMS: dict[str, Any] = {
    "attention": "reference",
    "posterior_head": False,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_schedule": "cosine",
    "warmup_epochs": 5,
    "max_epochs": 60,
    "batch_size": 128,
    "weight_averaging_epochs": None,
    "freeze_proj_epochs": 3,
    "failure_weight": "adaptive",
    "early_stopping": False,
    "unseen_candidates": "model",
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# a loss term within this factor of the float range counts as an overflow
_OVERFLOW_MARGIN = 1e4
#: Largest share of rows whose ``labels`` may contradict ``y_correct`` in ``fit``
#: (with a warning) before it is refused: near-ties of the similarities can
#: flip the argmax between precisions, a shifted or permuted labelling cannot.
LABEL_DISAGREEMENT_LIMIT = 0.01
# (rows x candidates) elements of one prediction batch's similarity matrix
_PREDICT_BUDGET = 1 << 24
# the names these objects had here, so that models pickled before they moved
# to _net.py still load
_ViLUNet = ViLUNet
_ValidAUROC = ValidAUROC
_warmup_cosine = _net._warmup_cosine
_warmup_constant = _net._warmup_constant
_silent = _net._silent


@register_estimator
class ViLUClassifier(BaseFailurePredictor):
    """ViLU failure predictor: predicts whether a VLM's prediction is correct.

    ViLU (Lafon, Karmim et al., ICCV 2025) learns, from embeddings alone, the
    probability that a CLIP-like model's zero-shot prediction is correct. For each
    image it concatenates the image embedding ``z_v``, the text embedding of the
    predicted candidate ``z_t_hat`` and an image-conditioned text representation
    ``z_t_alpha`` (cross-attention of ``z_v`` over all candidate texts), and an MLP
    outputs the logit of P(correct). It is trained with a weighted binary
    cross-entropy that up-weights the VLM's failures.

    ``predict_proba[:, 1]`` and ``decision_function`` are confidences, as
    everywhere in the package (docs/conventions.md), so ``roc_auc`` scorers take
    the successes as the positive class.

    Two call forms are supported:

    * ``fit(X_img, X_txt, y_correct)``, then ``predict_proba(X_img, X_txt)``;
    * ``ViLUClassifier(text_embeddings=X_txt).fit(X_img, y_correct)``, then
      ``predict_proba(X_img)`` (``X_txt`` optional): the standard ``fit(X, y)``
      form used by ``GridSearchCV``, ``cross_validate``, ``Pipeline`` and
      ``clone``. The (K, d) text matrix is a parameter, so cross-validation never
      slices it.

    In caption mode (``mode="caption"``) ``X_txt`` has one caption per image,
    paired row by row, and the candidates of an image are the captions of its
    group: during training the mini-batch (``batch_size`` captions), during
    validation (early stopping) and prediction consecutive groups of
    ``caption_group_size`` rows; ``fit`` warns when the two sizes differ.
    ``y_correct`` is then computed (the image's own caption is the most similar
    of its group) and must not be given: call
    ``fit(X_img, X_txt)``; ``GridSearchCV(...).fit(X_img, X_txt)`` slices images
    and captions together.

    Input embeddings may be float16, float32 or float64 and need not be
    normalised: they are cast to ``dtype`` batch by batch (the input arrays are
    never copied whole, so memory-mapped arrays stream from disk) and, with
    ``normalize=True``, L2-normalised inside the model.

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings (e.g. one prompt per class) used when ``fit`` and
        the prediction methods get no ``X_txt``. Classification mode only.
    mode : {"classification", "caption"}, default="classification"
        Shared class prompts (classification) or per-image captions (caption).
    caption_group_size : int, default=1024
        Caption mode: number of candidate captions per group at validation and
        prediction time (the ViLU paper evaluates with 1024). Consecutive rows
        form a group; the last group may be smaller.
    logit_scale : float, default=100.0
        CLIP's temperature (100 for OpenAI CLIP), used by the ``"reference"``
        attention as ``softmax(logit_scale * cos)``.
    normalize : bool, default=True
        L2-normalise image and text embeddings inside the model.
    attention : {"reference", "paper"}, default="reference"
        ``"reference"``: as the authors' code, bias-free ``W_q`` and one ``W_kv``
        shared by keys and values, identity-initialised, temperature
        ``logit_scale``. ``"paper"``: as the paper writes it, separate
        ``W_Q, W_K, W_V`` with ``1/sqrt(d)`` scaling and ``n_heads`` heads.
    n_heads : int, default=1
        Heads of the ``"paper"`` attention.
    freeze_proj_epochs : int, default=3
        Training epochs during which the attention projections are kept at
        identity (bypassed); counted in epochs like ``n_iter_no_change``, so it
        means the same share of training on 1k and on 1M rows. The reference
        CIFAR-10 recipe freezes for 1000 iterations of 128, about 2.6 epochs.
    keep_frozen : bool, default=False
        Keep the projections at identity throughout (parameter-free attention
        ``z_t_alpha = sum_k softmax(logit_scale * cos)_k z_t_k``).
    use_attention : bool, default=True
        Use ``z_t_alpha``. With ``use_predicted_text`` also False the head is
        visual-only (the paper's LVU-style ablation) and needs no texts.
    use_predicted_text : bool, default=True
        Use ``z_t_hat``.
    posterior_head : bool, default=True
        Add a learned posterior over the candidates, read at the VLM's
        prediction, to the MLP's logit (:class:`~vilu_sklearn._modules.PosteriorHead`:
        the VLM's logits ``logit_scale * cos`` plus a learned bilinear
        correction; it starts as the logit of MSP). Not in the paper: it raised
        the validation AUROC on real-image embeddings (docs/vilu.md). False
        gives the paper's head (see ``REFERENCE_PARAMS``).
    branch_loss : {"joint", "separate"}, default="joint"
        How the two terms of the logit are trained when ``posterior_head=True``
        (the ViLU branch -- the MLP over the image, the attended and the
        predicted text -- and the posterior head). ``"joint"``: one weighted
        BCE on their sum, so the branch learns what the posterior head leaves
        unexplained. ``"separate"``: each term gets its own weighted BCE (the
        branch is trained as a failure predictor on its own, the posterior head
        too, plus the labels' cross-entropy when given); the score is still
        their sum. On real-image embeddings "separate" raised the validation
        AUROC by 0.14 (3 of 3 seeds) and made the branch carry signal (82 AUROC
        alone, against 51-54 with "joint"): docs/vilu.md.
    unseen_candidates : {"fallback", "model"}, default="fallback"
        What the prediction methods do, in classification mode, when ``X_txt``
        holds candidate texts that were not among ``fit``'s (new classes or new
        prompts; a subset or reordering of ``fit``'s candidates is not new).
        ``"fallback"``: warn, and score with the model's class-agnostic part
        only, the logit of the VLM's softmax probability of its prediction at
        the learned temperature (``logit_scale`` times the posterior head's
        ``tau``; ``logit_scale`` without the posterior head). ``"model"``: use
        the whole model anyway. The learned terms read the embeddings of
        ``fit``'s candidates; on real-image embeddings, scored on classes never
        seen in ``fit``, they fell below the VLM's own MSP (by 0.5 to 3.2 AUROC),
        where the fallback matches it (docs/vilu.md). Caption mode, whose
        candidates are always new, always uses the whole model.
    posterior_hidden_size : int, default=2048
        Width of the hidden layer of the posterior head's image map
        (``A relu(H z_v + c) + b``); 0 makes the map linear (``A z_v + b``).
        The wide map raised the validation AUROC on real-image and synthetic
        embeddings (docs/vilu.md); its cost is ``2 d x 2048`` multiply-adds per
        image.
    hidden_layer_sizes : tuple of int, default=(512, 256, 128)
        Hidden widths of the MLP (3d -> 512 -> 256 -> 128 -> 1 as in the paper);
        ``()`` makes it a linear head on the concatenated features.
    activation : {"relu", "leaky_relu", "gelu", "tanh"}, default="relu"
        Hidden activation.
    dropout : float, default=0.0
        Dropout after each hidden activation.
    failure_weight : "adaptive", float or None, default="adaptive"
        Weight of the failures in the loss: ``"adaptive"`` is the paper's
        ``log(1 + acc / (1 - acc))`` with ``acc`` the VLM's accuracy on the
        mini-batch; a number is a fixed weight; None weighs all samples equally.
    optimizer : {"sgd", "adamw", "adam"}, default="adamw"
        Optimiser. The defaults (AdamW, lr 1e-3, weight decay 1e-2, 1 warm-up
        epoch, cosine schedule, batch 256, 20 epochs) were
        chosen on a validation split of real-image embeddings (docs/vilu.md);
        the authors' recipe (SGD, momentum 0.9, weight decay 5e-4, 5 warm-up
        epochs, batch 128) is in ``REFERENCE_PARAMS``.
    lr : float, default=1e-3
        Learning rate.
    weight_decay : float, default=1e-2
        Weight decay.
    momentum : float, default=0.9
        Momentum of SGD (ignored by the Adam optimisers).
    lr_schedule : {"cosine", "constant"}, default="cosine"
        Learning-rate schedule over ``max_epochs``, stepped once per epoch.
    warmup_epochs : int, default=1
        Linear warm-up epochs (from 0.1 x ``lr``).
    max_epochs : int, default=20
        Maximum number of epochs.
    weight_averaging_epochs : float or None, default=None
        Keep an exponential moving average of the weights with a time constant
        of this many epochs of steps, and use it as the final model (None: the
        last weights). Not used with early stopping, which restores the weights
        of its best validation epoch instead.
    batch_size : int or None, default=None
        Training mini-batch size; a last partial batch is dropped (as in the
        reference), so every step's adaptive failure weight sees a full batch.
        None: 256 in classification mode, ``caption_group_size`` in caption mode.
        In caption mode also the number of candidate captions per training step:
        ``fit`` warns when it differs from ``caption_group_size``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop when the
        validation score has not improved by ``tol`` (relative) for
        ``n_iter_no_change`` epochs, and restore the best weights.
    early_stopping_metric : {"auroc", "loss"}, default="auroc"
        Validation score of early stopping: the AUROC of the confidences
        (successes positive; recorded as ``valid_auroc`` in ``history_``) or the
        weighted BCE loss (``valid_loss``).
    validation_fraction : float, default=0.1
        Held-out share for early stopping (stratified on ``y_correct``).
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum relative improvement of the validation score.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ...
    mixed_precision : "auto" or bool, default="auto"
        bfloat16 autocast; ``"auto"`` enables it on CUDA only.
    dtype : {"float32", "float64"}, default="float32"
        Parameter and computation dtype (float64 for exact reproducibility).
    predict_batch_size : int, default=None
        Rows per prediction batch; by default as many as keep the (rows x
        candidates) similarity matrix below 16M elements, at most 8192.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and the validation split. The
        global NumPy and torch generators are left untouched.
    verbose : int, default=0
        0: silent; 1: one line per epoch (losses, validation AUROC) on stdout
        and, when tqdm is installed (extra ``vilu-sklearn[progress]``), a
        progress bar over the epochs on stderr.
    distributed : bool, default=False
        Data-parallel training through Hugging Face Accelerate (extra
        ``vilu-sklearn[distributed]``) over the processes of ``accelerate
        launch`` or ``torchrun``: every process runs the same script and calls
        ``fit`` on the same data; each trains on its share of every global batch
        of ``batch_size`` rows (divisible by the number of processes), and all
        end with the same fitted model, which matches a one-process fit with the
        same ``batch_size`` and seed to float rounding. In caption mode the
        candidates of a training step are the global batch's captions. Only the
        main process prints. Needs ``dtype="float32"`` and no early stopping.
        See docs/scale.md.
    checkpoint_dir : str, default=None
        Folder where the weights, optimiser state and history are saved after
        every epoch (by the main process); ``fit`` resumes from what it finds
        there, so a killed run started again ends with the weights an
        uninterrupted run would have. The folder belongs to one training run:
        ``fit`` refuses a checkpoint of other data or parameters. Not with
        early stopping or weight averaging.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels (``[False, True]`` for booleans): the first
        means the VLM is wrong, the second that it is right. Other binary labels
        are accepted as by any scikit-learn classifier; the greater is "right".
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d) or None
        Candidate texts seen in ``fit`` (float32); None in caption mode and for
        the visual-only head.
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the torch module.
    history_ : skorch.History
        Per-epoch training (and validation) losses.
    n_epochs_ : int
        Epochs completed (an epoch cut short, e.g. by an interrupt, is not
        counted).
    best_epoch_ : int
        Epoch whose weights were kept (the last one without early stopping).
    device_ : torch.device
        Device used for training.
    fit_time_ : float
        Training wall time in seconds.
    interrupted_ : bool
        True when a KeyboardInterrupt (Ctrl-C) ended training early: ``fit``
        then raises the KeyboardInterrupt again (so that it also stops a
        ``GridSearchCV`` or a calibration wrapping the estimator), and the
        incomplete model is kept on the estimator.

    Notes
    -----
    Training that diverges (a non-finite loss or output, e.g. with too high a
    learning rate; the message names the inputs instead when they overflow
    ``dtype``) stops with a warning and keeps the last weights known to be
    finite (early stopping's best, else those of the last finished epoch;
    ``best_epoch_`` says which); if it diverges in the first epoch, ``fit``
    raises a ``ValueError``. When early stopping on AUROC would see a
    validation split with one class only, it is disabled with a warning.

    See Also
    --------
    vilu_sklearn.correctness : Build ``y_correct`` from class labels.
    vilu_sklearn.zero_shot_predict : The VLM's own zero-shot predictions.

    References
    ----------
    .. [1] M. Lafon, Y. Karmim, J. Silva-Rodriguez et al. "ViLU: Learning
       Vision-Language Uncertainties for Failure Prediction", ICCV 2025,
       arXiv:2507.07620.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import ViLUClassifier, correctness
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(5, 16))                  # 5 class prompts
    >>> labels = rng.integers(0, 5, size=200)
    >>> X_img = X_txt[labels] + rng.normal(scale=1.5, size=(200, 16))
    >>> y_correct = correctness(X_img, X_txt, labels)     # 1 = the VLM is right
    >>> clf = ViLUClassifier(hidden_layer_sizes=(32,), max_epochs=5, random_state=0)
    >>> clf = clf.fit(X_img, X_txt, y_correct, labels=labels)  # labels: optional
    >>> clf.predict_proba(X_img[:3], X_txt).shape
    (3, 2)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "text_embeddings": ["array-like", None],
        "mode": [StrOptions({"classification", "caption"})],
        "caption_group_size": [positive_int()],
        "logit_scale": [positive_real()],
        "normalize": ["boolean"],
        "attention": [StrOptions({"reference", "paper"})],
        "n_heads": [positive_int()],
        "freeze_proj_epochs": [NumberInterval(Integral, 0, None, closed="left")],
        "keep_frozen": ["boolean"],
        "use_attention": ["boolean"],
        "use_predicted_text": ["boolean"],
        "posterior_head": ["boolean"],
        "posterior_hidden_size": [NumberInterval(Integral, 0, None, closed="left")],
        "branch_loss": [StrOptions({"joint", "separate"})],
        "unseen_candidates": [StrOptions({"fallback", "model"})],
        "hidden_layer_sizes": [PositiveIntSequence()],
        "activation": [StrOptions({"relu", "leaky_relu", "gelu", "tanh"})],
        "dropout": [NumberInterval(Real, 0, 1, closed="left")],
        "failure_weight": [
            StrOptions({"adaptive"}),
            NumberInterval(Real, 0, None, closed="left"),
            None,
        ],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr": [positive_real()],
        "weight_decay": [NumberInterval(Real, 0, None, closed="left")],
        "momentum": [NumberInterval(Real, 0, 1, closed="both")],
        "lr_schedule": [StrOptions({"cosine", "constant"})],
        "warmup_epochs": [NumberInterval(Integral, 0, None, closed="left")],
        "max_epochs": [positive_int()],
        "weight_averaging_epochs": [positive_real(), None],
        "batch_size": [positive_int(), None],
        "early_stopping": ["boolean"],
        "early_stopping_metric": [StrOptions({"auroc", "loss"})],
        "validation_fraction": [NumberInterval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [NumberInterval(Integral, 0, None, closed="left")],
        "tol": [NumberInterval(Real, 0, None, closed="left")],
        "device": [Device()],
        "mixed_precision": [StrOptions({"auto"}), "boolean"],
        "dtype": [StrOptions(set(_DTYPES))],
        "predict_batch_size": [positive_int(), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "distributed": ["boolean"],
        "checkpoint_dir": [str, None],
    }
    # saved state (vilu_sklearn.load): the torch classes it holds, and the value
    # of each parameter added since files were first written that reproduces
    # older files (their posterior head was linear)
    _persist_classes: ClassVar[tuple[type, ...]] = (
        ViLUNet,
        ViLUModule,
        torch.nn.BCEWithLogitsLoss,
    )
    _persist_legacy_params: ClassVar[dict[str, Any]] = {
        "posterior_hidden_size": 0,
        "branch_loss": "joint",
        "unseen_candidates": "model",  # files written before it scored any texts
        "distributed": False,
        "checkpoint_dir": None,
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        attention: str = "reference",
        n_heads: int = 1,
        freeze_proj_epochs: int = 3,
        keep_frozen: bool = False,
        use_attention: bool = True,
        use_predicted_text: bool = True,
        posterior_head: bool = True,
        posterior_hidden_size: int = 2048,
        branch_loss: str = "joint",
        unseen_candidates: str = "fallback",
        hidden_layer_sizes: tuple[int, ...] = (512, 256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        failure_weight: str | float | None = "adaptive",
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        momentum: float = 0.9,
        lr_schedule: str = "cosine",
        warmup_epochs: int = 1,
        max_epochs: int = 20,
        weight_averaging_epochs: float | None = None,
        batch_size: int | None = None,
        early_stopping: bool = False,
        early_stopping_metric: str = "auroc",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        device: str = "auto",
        mixed_precision: str | bool = "auto",
        dtype: str = "float32",
        predict_batch_size: int | None = None,
        random_state: Any = None,
        verbose: int = 0,
        distributed: bool = False,
        checkpoint_dir: str | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.caption_group_size = caption_group_size
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.attention = attention
        self.n_heads = n_heads
        self.freeze_proj_epochs = freeze_proj_epochs
        self.keep_frozen = keep_frozen
        self.use_attention = use_attention
        self.use_predicted_text = use_predicted_text
        self.posterior_head = posterior_head
        self.posterior_hidden_size = posterior_hidden_size
        self.branch_loss = branch_loss
        self.unseen_candidates = unseen_candidates
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.failure_weight = failure_weight
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.max_epochs = max_epochs
        self.weight_averaging_epochs = weight_averaging_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.early_stopping_metric = early_stopping_metric
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.mixed_precision = mixed_precision
        self.dtype = dtype
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.verbose = verbose
        self.distributed = distributed
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ checks
    def _check_extra_params(self) -> None:
        device = resolve_device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} asks for CUDA, but CUDA is not available "
                "on this machine; use device='auto' or 'cpu'."
            )
        if self.branch_loss == "separate" and not self.posterior_head:
            raise ValueError(
                "branch_loss='separate' trains the ViLU branch and the posterior "
                "head each with its own loss; it needs posterior_head=True "
                "(without the posterior head the branch is the whole model)."
            )
        check_training_setup(self)

    @property
    def _needs_texts(self) -> bool:
        return bool(
            self.use_attention or self.use_predicted_text or self.posterior_head
        )

    @property
    def _texts_required(self) -> bool:
        return self._needs_texts

    # --------------------------------------------------------------------- fit
    def fit(
        self,
        X: Any,
        y: Any = None,
        y_correct: Any = None,
        *,
        sample_weight: Any = None,
        labels: Any = None,
    ) -> ViLUClassifier:
        """Validate the parameters and the inputs, then train.

        Call forms as for every failure predictor of the package:
        ``fit(X_img, X_txt, y_correct)``, ``fit(X_img, y_correct)`` with
        ``text_embeddings`` set, and in caption mode ``fit(X_img, X_txt)``
        with paired captions.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings ``X_img``.
        y : array-like of shape (n_samples,) or (K, d) or (n_samples, d)
            ``y_correct`` in the two-argument form; the candidate texts
            ``X_txt`` in the three-argument form; the paired captions in
            caption mode.
        y_correct : array-like of shape (n_samples,), default=None
            1 where the VLM's prediction is correct, 0 where it is wrong.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights multiplying each sample's loss.
        labels : array-like of int of shape (n_samples,), default=None
            Classification mode: the true class of each image, as an index
            into the candidate texts (the labels ``y_correct`` was computed
            from). With them the posterior head is also trained with a
            cross-entropy on the true class, which tells it where the VLM's
            failures really belong (``y_correct`` only says where they do
            not); this raised the validation AUROC on real-image embeddings
            (docs/vilu.md). Needs ``posterior_head=True``. They must agree
            with ``y_correct`` (the label is the VLM's prediction exactly where
            ``y_correct`` is 1): a few contradictions warn, more than 1 %
            (``LABEL_DISAGREEMENT_LIMIT``) raise a ``ValueError``.

        Returns
        -------
        self : ViLUClassifier
            The fitted estimator.
        """
        self._check_params()
        inputs = self._fit_inputs(X, y, y_correct, sample_weight)
        self._fit(inputs._replace(labels=self._check_labels(labels, inputs)))
        return self

    def _check_labels(self, labels: Any, inputs: FitInputs) -> np.ndarray | None:
        """Validate ``labels``: integer class indices into the candidate texts."""
        if labels is None:
            return None
        if self.mode != "classification" or inputs.X_txt is None:
            raise ValueError(
                "labels are class indices into X_txt: they need "
                "mode='classification' and candidate texts."
            )
        if not self.posterior_head:
            raise ValueError(
                "labels train the posterior head; they need posterior_head=True."
            )
        labels = check_class_labels(
            labels, inputs.X_img.shape[0], inputs.X_txt.shape[0]
        )
        check_labels_agree(labels, inputs, normalize=bool(self.normalize))
        return labels

    def _fit(self, inputs: FitInputs) -> None:
        """Train: build the net, seed and train it, set the fitted attributes."""
        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        np_dtype = np.float64 if self.dtype == "float64" else np.float32
        for name, X in (("X_img", inputs.X_img), ("X_txt", inputs.X_txt)):
            check_float32_range(X, name, np_dtype)
        check_float32_range(inputs.captions, "X_txt", np_dtype)
        n_samples, n_features = inputs.X_img.shape
        self._warn_caption_group_mismatch()
        early = self._early_stopping_enabled(n_samples) and self._valid_split_usable(
            inputs.y, seed
        )
        accelerator = self._accelerator(n_samples)
        net = self._build_net(
            n_features,
            early=early,
            seed=seed,
            accelerator=accelerator,
            stream=getattr(inputs.X_img, "_vilu_lazy_rows", False),
        )
        dataset = EmbeddingDataset(
            inputs.X_img,
            texts=inputs.captions,
            y=inputs.y,
            sample_weight=inputs.sample_weight,
            labels=inputs.labels,
        )
        texts = inputs.X_txt if self._needs_texts else None
        result = train_net(
            net,
            dataset,
            candidates=texts,
            seed=seed,
            dtype=_DTYPES[self.dtype],
            epochs=start_checkpoint(self, accelerator, n_samples, n_features, seed),
        )
        net = net if accelerator is None else plain_net(net)
        self.fit_time_ = result.fit_time
        self._set_fitted_attributes(net, inputs, early=early)
        self._report_abnormal_end(result, inputs)

    def _report_abnormal_end(self, result: TrainResult, inputs: FitInputs) -> None:
        """Raise or warn when training diverged or was interrupted."""
        self.interrupted_ = result.interrupted
        if result.diverged_at is not None:
            overflow = self._overflow_suspects(inputs)
            advice = (
                f"The inputs overflow {self.dtype}: {'; '.join(overflow)}"
                if overflow
                else f"Lower the learning rate (lr={self.lr!r})"
            )
            if result.restored_epoch == 0:
                raise ValueError(
                    f"Training diverged: the loss or the outputs were not finite in "
                    f"epoch {result.diverged_at}, before any epoch finished, so there "
                    f"are no usable weights. {advice}"
                    + ("." if overflow else " or check the inputs.")
                )
            warnings.warn(
                f"Training diverged: the loss or the outputs were not finite in "
                f"epoch {result.diverged_at}; training stopped and the weights of "
                f"epoch {result.restored_epoch} were restored (best_epoch_). {advice}"
                + ("." if overflow else " to train further."),
                UserWarning,
                stacklevel=4,
            )
            self.best_epoch_ = result.restored_epoch
        if result.interrupted:
            # skorch swallows Ctrl-C; raised again, it stops a search or a
            # calibration too, instead of letting them score a truncated model
            raise KeyboardInterrupt(
                f"Training was interrupted after {self.n_epochs_} of "
                f"{self.max_epochs} epochs: the incomplete model is kept on the "
                "estimator (interrupted_ is True)."
            )

    def _overflow_suspects(self, inputs: FitInputs) -> list[str]:
        """Inputs whose size can make the loss overflow (not a too high ``lr``).

        A sample weight, a logit scale or (``normalize=False``) an embedding
        norm whose products in the loss come within :data:`_OVERFLOW_MARGIN`
        of the float range.
        """
        limit = float(np.finfo(np.float32 if self.dtype == "float32" else float).max)
        limit /= _OVERFLOW_MARGIN
        found = []
        sw = inputs.sample_weight
        if sw is not None and float(sw.max()) > limit:
            found.append(
                f"sample_weight holds values up to {float(sw.max()):.3g} (only "
                "the ratios of the weights matter: divide them by their mean)"
            )
        norm = 1.0
        if not self.normalize:
            norm = _max_row_norm(inputs.X_img)
            texts = inputs.X_txt if inputs.X_txt is not None else inputs.captions
            norm *= 1.0 if texts is None else _max_row_norm(texts)
            if norm > limit:
                found.append(
                    f"with normalize=False the image-text dot products reach "
                    f"{norm:.3g} (use normalize=True or rescale the embeddings)"
                )
        if norm <= limit < float(self.logit_scale) * norm:
            found.append(
                f"logit_scale={self.logit_scale!r} times the similarities reaches "
                f"{float(self.logit_scale) * norm:.3g} (CLIP's logit_scale is 100)"
            )
        return found

    def _valid_split_usable(self, y: Any, seed: int) -> bool:
        """Early stopping on AUROC needs both classes in the validation split."""
        if y is None or self.early_stopping_metric != "auroc":
            return True
        _, valid = IndexSplit(self.validation_fraction, seed).positions(y)
        if 0 < y[valid].sum() < len(valid):
            return True
        warnings.warn(
            f"The validation split of early stopping holds only one class "
            f"({len(valid)} samples, {int(np.sum(y == 0))} failures in all): its "
            "AUROC is undefined, so early stopping is disabled for this fit and "
            "training runs max_epochs. Use more data, a larger "
            "validation_fraction or early_stopping_metric='loss'.",
            UserWarning,
            stacklevel=5,
        )
        return False

    @property
    def _batch_size(self) -> int:
        """``batch_size``, or its mode's default when None."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return int(self.caption_group_size) if self.mode == "caption" else 256

    def _warn_caption_group_mismatch(self) -> None:
        if self.mode == "caption" and self._batch_size != self.caption_group_size:
            warnings.warn(
                f"Caption mode trains with batch_size={self._batch_size} candidate "
                f"captions per step but validates and predicts with "
                f"caption_group_size={self.caption_group_size}: retrieval among more "
                "candidates is a harder task. Set them equal to train on the task "
                "that is evaluated.",
                UserWarning,
                stacklevel=4,
            )

    def _early_stopping_enabled(self, n_samples: int) -> bool:
        """Early stopping, unless the validation split would be too small."""
        if not self.early_stopping:
            return False
        n_valid = math.ceil(self.validation_fraction * n_samples)
        if n_valid < 2 or n_samples - n_valid < 2:
            warnings.warn(
                f"early_stopping needs a validation split of at least 2 samples; "
                f"with {n_samples} samples and validation_fraction="
                f"{self.validation_fraction} it is disabled for this fit.",
                UserWarning,
                stacklevel=4,
            )
            return False
        return True

    def _module_factory(self, n_features: int) -> functools.partial[ViLUModule]:
        """The torch module, as a factory skorch calls at initialisation."""
        return functools.partial(
            ViLUModule,
            n_features,
            attention=self.attention,
            n_heads=self.n_heads,
            logit_scale=float(self.logit_scale),
            use_attention=self.use_attention,
            use_predicted_text=self.use_predicted_text,
            posterior_head=bool(self.posterior_head),
            posterior_hidden_size=int(self.posterior_hidden_size),
            hidden_layer_sizes=tuple(int(w) for w in self.hidden_layer_sizes),
            activation=self.activation,
            dropout=float(self.dropout),
            projections_frozen=int(self.freeze_proj_epochs) > 0,
            keep_frozen=bool(self.keep_frozen),
            normalize=bool(self.normalize),
        )

    def _accelerator(self, n_samples: int) -> Any:
        """The Accelerator of a data-parallel fit (None without ``distributed``)."""
        if not self.distributed:
            return None
        return accelerator_for(self, n_samples)

    def _callbacks(self, *, early: bool) -> list[tuple[str, Any]]:
        """Checkpoints, freeze, LR schedule, averaging or early stopping, progress."""
        averaging = None if early else self.weight_averaging_epochs
        saved = (
            []
            if self.checkpoint_dir is None
            else checkpoint_callbacks(self.checkpoint_dir)
        )
        return saved + training_callbacks(
            freeze_proj_epochs=int(self.freeze_proj_epochs),
            weight_averaging_epochs=None if averaging is None else float(averaging),
            lr_schedule=self.lr_schedule,
            warmup_epochs=int(self.warmup_epochs),
            max_epochs=int(self.max_epochs),
            early_stopping_metric=self.early_stopping_metric if early else None,
            patience=int(self.n_iter_no_change),
            tol=float(self.tol),
            verbose=int(self.verbose),
        )

    def _optimizer_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"optimizer__weight_decay": self.weight_decay}
        if self.optimizer == "sgd":
            kwargs["optimizer__momentum"] = self.momentum
        return kwargs

    def _iterator_kwargs(self, *, seed: int) -> dict[str, Any]:
        """Batching: shuffled full training batches, all cast to ``dtype``.

        Caption mode validates on groups of ``caption_group_size``, as it predicts.
        """
        dtype = _DTYPES[self.dtype]
        return {
            "iterator_train": BatchLoader,
            "iterator_train__shuffle": True,
            "iterator_train__drop_last": True,
            "iterator_train__seed": seed,
            "iterator_train__dtype": dtype,
            "iterator_valid": BatchLoader,
            "iterator_valid__dtype": dtype,
            "iterator_valid__batch_size": int(
                self.caption_group_size if self.mode == "caption" else self._batch_size
            ),
        }

    def _build_net(
        self,
        n_features: int,
        *,
        early: bool,
        seed: int,
        accelerator: Any = None,
        stream: bool = False,
    ) -> ViLUNet:
        """The (uninitialised) skorch net with its callbacks and optimiser.

        With an ``accelerator``, the net trained through it, its own share of
        every global batch (:mod:`vilu_sklearn._distributed`); ``stream``:
        batches stream shard by shard (a ``ShardedArray`` input).
        """
        device = resolve_device(self.device)
        verbose = int(self.verbose)
        cls, extra = ViLUNet, {}
        if accelerator is not None or stream:
            extra = stream_kwargs(accelerator)
        if accelerator is not None:
            cls, device = AcceleratedViLUNet, accelerator.device
            if device.type == "cpu":  # "cpu:0" would not reload a checkpoint
                device = torch.device("cpu")
            extra["accelerator"] = accelerator
            verbose = verbose if accelerator.is_main_process else 0
        return cls(
            self._module_factory(n_features),
            vilu_caption=self.mode == "caption",
            vilu_failure_weight=self.failure_weight,
            vilu_autocast=uses_autocast(device, self.mixed_precision),
            vilu_separate_losses=self.branch_loss == "separate",
            criterion=torch.nn.BCEWithLogitsLoss,
            optimizer=OPTIMIZERS[self.optimizer],
            lr=self.lr,
            max_epochs=int(self.max_epochs),
            batch_size=self._batch_size,
            train_split=IndexSplit(self.validation_fraction, seed) if early else None,
            callbacks=[  # no progress bar in the processes that do not print
                (name, cb)
                for name, cb in self._callbacks(early=early)
                if verbose or name != "progress_bar"
            ],
            device=device,
            verbose=verbose,
            callbacks__print_log__sink=log_sink(verbose),
            **{**self._iterator_kwargs(seed=seed), **extra},
            **self._optimizer_kwargs(),
        )

    def _set_fitted_attributes(
        self, net: ViLUNet, inputs: FitInputs, *, early: bool
    ) -> None:
        self.net_ = net
        self.history_ = net.history
        self.n_epochs_ = sum("train_loss" in row for row in net.history)
        self.best_epoch_ = self.n_epochs_
        if early:
            self.best_epoch_ = int(dict(net.callbacks_)["early_stopping"].best_epoch_)
        self.device_ = torch.device(net.device)
        self.text_embeddings_ = (
            None
            if inputs.X_txt is None or not self._needs_texts
            else np.asarray(inputs.X_txt, dtype=np.float32)
        )
        self.classes_ = inputs.classes
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------- prediction
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_cache", None)  # device tensors: rebuilt lazily after loading
        return state

    def _module(self) -> ViLUModule:
        module: ViLUModule = self.net_.module_
        return module

    def _inference_device(self) -> torch.device:
        return next(self._module().parameters()).device

    def _encoded(
        self, texts: np.ndarray, *, cache_key: str | None
    ) -> EncodedCandidates | CandidateTables:
        """Prepare candidate texts once; the fitted text set is cached."""
        cache = self.__dict__.setdefault("_cache", {})
        module = self._module()
        if cache_key is not None:  # the fast and dense paths prepare differently
            cache_key = f"{cache_key}:{'fast' if module.fast_inference else 'dense'}"
        if cache_key is not None and cache_key in cache:
            enc: EncodedCandidates | CandidateTables = cache[cache_key]
            return enc
        param = next(module.parameters())
        with torch.inference_mode():
            enc = module.prepare_candidates(
                torch.as_tensor(np.ascontiguousarray(texts), dtype=param.dtype).to(
                    param.device
                )
            )
        if cache_key is not None:
            cache[cache_key] = enc
        return enc

    def _resolve_predict_texts(self, X_txt: Any, d: int) -> tuple[Any, str | None]:
        if X_txt is None:
            if self.text_embeddings_ is None:
                if self._module().needs_candidates:
                    raise ValueError(
                        "X_txt is required: this model was fitted without "
                        "text_embeddings, so pass the candidate texts, e.g. "
                        "predict_proba(X_img, X_txt)."
                    )
                return None, None
            return self.text_embeddings_, "fit"
        X_txt = check_candidate_texts(
            X_txt, d, feature_names=getattr(self, "feature_names_in_", None)
        )
        if (
            self.text_embeddings_ is not None
            and X_txt.shape == self.text_embeddings_.shape
            and np.array_equal(
                np.asarray(X_txt, dtype=np.float32), self.text_embeddings_
            )
        ):
            return self.text_embeddings_, "fit"
        return X_txt, None

    def _batch_rows(self, n_candidates: int) -> int:
        if self.predict_batch_size is not None:
            return int(self.predict_batch_size)
        return int(max(64, min(8192, _PREDICT_BUDGET // max(1, n_candidates))))

    def decision_function(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Confidence logit that the VLM's prediction is correct.

        Higher means more likely correct; ``sigmoid`` of it is
        ``predict_proba(X)[:, 1]``. For AUROC and FPR@95%TPR the successes
        (``y_correct = 1``) are the positive class.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts (classification; defaults to those seen in ``fit``) or
            the paired captions (caption mode; required).

        Returns
        -------
        confidence : ndarray of shape (n_samples,)
            Logit of P(correct), float64.
        """
        return super().decision_function(X, X_txt)

    def _inference(self) -> tuple[ViLUModule, torch.device, Any]:
        """The module in eval mode, its device and the NumPy dtype of its inputs."""
        module = self._module()
        module.eval()
        dtype = next(module.parameters()).dtype
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        return module, self._inference_device(), np_dtype

    def _classification_scores(self, X_img: np.ndarray, X_txt: Any) -> np.ndarray:
        module, device, np_dtype = self._inference()
        n, d = X_img.shape
        texts, key = self._resolve_predict_texts(X_txt, d)
        if texts is not None:
            check_float32_range(texts, "X_txt", np_dtype)
            if key is None and self._falls_back(texts):
                return self._fallback_scores(X_img, texts, np_dtype)
        enc = None if texts is None else self._encoded(texts, cache_key=key)
        rows = self._batch_rows(1 if texts is None else len(texts))
        out = np.empty(n, dtype=np.float64)
        with torch.inference_mode(), self._autocast(device):
            for start in range(0, n, rows):
                block = X_img[start : start + rows]
                check_float32_range(block, "X_img", np_dtype)
                img = torch.as_tensor(
                    np.ascontiguousarray(block, dtype=np_dtype), device=device
                )
                out[start : start + rows] = module(img, enc).double().cpu().numpy()
        return out

    @property
    def _unseen_classes(self) -> str:
        """Capability under the benchmark's unseen-classes protocol."""
        if self.unseen_candidates == "fallback" and self.mode == "classification":
            return "fallback:the VLM's softmax at the learned temperature"
        return "ok"

    def _get_persist_state(self) -> dict[str, Any]:
        state = super()._get_persist_state()
        net = state.get("net_")
        if net is not None:  # a flag of the module, not in its state_dict
            state["_projections_frozen"] = bool(net.module_.projections_frozen)
        return state

    def _set_persist_state(self, state: dict[str, Any]) -> None:
        frozen = state.pop("_projections_frozen", None)
        super()._set_persist_state(state)
        net = getattr(self, "net_", None)
        if net is None:
            return
        if frozen is None:  # files written before the flag was saved
            frozen = len(net.history) <= self.freeze_proj_epochs
        net.module_.projections_frozen = bool(frozen)

    def _falls_back(self, texts: Any) -> bool:
        """Whether to score ``texts`` with the class-agnostic part (and warn)."""
        if self.unseen_candidates != "fallback" or self.text_embeddings_ is None:
            return False
        new = unseen_candidates(np.asarray(texts), self.text_embeddings_)
        if not new.any():
            return False
        warnings.warn(
            f"X_txt holds {int(new.sum())} of {len(new)} candidate texts that were "
            "not among fit's candidates; ViLU scores them with its class-agnostic "
            "part, the VLM's softmax at the learned temperature "
            "(unseen_candidates='model' uses the whole model; docs/vilu.md).",
            UnseenCandidatesWarning,
            stacklevel=4,
        )
        return True

    def _fallback_scores(
        self, X_img: np.ndarray, texts: Any, np_dtype: Any
    ) -> np.ndarray:
        """:func:`class_agnostic_scores` at the learned temperature, batch by batch."""
        module = self._module()
        posterior = module.posterior
        scale = (
            self.logit_scale if posterior is None else float(posterior.scale.detach())
        )
        T = np.asarray(texts, dtype=np.float64)
        rows = self._batch_rows(len(T))
        out = np.empty(len(X_img), dtype=np.float64)
        for start in range(0, len(X_img), rows):
            block = np.asarray(X_img[start : start + rows])
            check_float32_range(block, "X_img", np_dtype)
            out[start : start + rows] = class_agnostic_scores(
                block, T, scale, normalize=self.normalize
            )
        return out

    def _group_scores(self, X_img: np.ndarray, captions: np.ndarray) -> np.ndarray:
        module, device, np_dtype = self._inference()
        check_float32_range(X_img, "X_img", np_dtype)
        check_float32_range(captions, "X_txt", np_dtype)
        img = torch.as_tensor(
            np.ascontiguousarray(X_img, dtype=np_dtype), device=device
        )
        txt = torch.as_tensor(
            np.ascontiguousarray(captions, dtype=np_dtype), device=device
        )
        with torch.inference_mode(), self._autocast(device):
            scores: np.ndarray = module(img, txt).double().cpu().numpy()
        return scores

    def _autocast(self, device: torch.device) -> Any:
        return autocast(uses_autocast(device, self.mixed_precision))

    def predict_proba(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Probability that the VLM's prediction is wrong (column 0) or right (1).

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            ``proba[:, 1]`` = P(correct), ordered like ``classes_ = [0, 1]``.
        """
        logits = self.decision_function(X, X_txt)
        p1 = 1.0 / (1.0 + np.exp(-logits))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Predicted correctness: 1 if P(correct) > 0.5, else 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Values of ``classes_``.
        """
        confidence = self.decision_function(X, X_txt)
        return self.classes_[(confidence > 0).astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        try:
            tags.non_deterministic = resolve_device(self.device).type == "cuda"
        except (RuntimeError, TypeError, ValueError):  # invalid device: fit says so
            tags.non_deterministic = False
        return tags


def check_labels_agree(
    labels: np.ndarray, inputs: FitInputs, *, normalize: bool
) -> None:
    """Check that class ``labels`` agree with ``y_correct``.

    Where ``y_correct`` is 1 the label must be the VLM's prediction (the argmax
    of the similarities to the candidate texts), where it is 0 another class.
    More than :data:`LABEL_DISAGREEMENT_LIMIT` of the rows in contradiction
    raise a ``ValueError``; fewer warn, with the counts.
    """
    assert inputs.X_txt is not None and inputs.y is not None
    pred = _predict_argmax(inputs.X_img, inputs.X_txt, normalize)
    hit = pred == labels
    wrong_right = int(np.sum(hit & (inputs.y == 0)))  # "wrong", label = prediction
    right_wrong = int(np.sum(~hit & (inputs.y == 1)))  # "right", label differs
    n_bad, n = wrong_right + right_wrong, len(labels)
    if not n_bad:
        return
    message = (
        f"labels contradict y_correct on {n_bad} of {n} rows ({100 * n_bad / n:.2g} "
        f"%): {right_wrong} rows with y_correct=1 have a label other than the "
        f"VLM's prediction (the argmax of the similarities to X_txt) and "
        f"{wrong_right} rows with y_correct=0 have the predicted class as their "
        "label. labels must be the true classes that y_correct was computed "
        "from (vilu_sklearn.correctness(X_img, X_txt, labels)), as indices into "
        "the rows of X_txt"
    )
    if n_bad > LABEL_DISAGREEMENT_LIMIT * n:
        raise ValueError(
            f"{message}; more than {100 * LABEL_DISAGREEMENT_LIMIT:g} % of "
            "contradictions is refused (shifted or permuted labels, or "
            "y_correct from other texts?)."
        )
    warnings.warn(
        f"{message}. Up to {100 * LABEL_DISAGREEMENT_LIMIT:g} % is tolerated "
        "(near-ties of the similarities can flip the argmax between "
        "precisions); the posterior head learns from these labels as given.",
        UserWarning,
        stacklevel=4,
    )


def _max_row_norm(X: np.ndarray) -> float:
    """Largest Euclidean row norm, in float64, read in chunks of rows."""
    peak = 0.0
    for start in range(0, X.shape[0], 65536):
        block = np.asarray(X[start : start + 65536], dtype=np.float64)
        peak = max(peak, float(np.sqrt(np.einsum("ij,ij->i", block, block)).max()))
    return peak
