"""Adam-mini: AdamW with one learning rate per block."""

from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adam_mini import (
    ADAM_PATTERNS,
    HEAD_PATTERNS,
    NO_DECAY_PATTERNS,
    ROW_PATTERNS,
    dotted_paths,
    scale_by_adam_mini,
)
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def adam_mini(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    dim: int = 2048,
    n_heads: int = 32,
    neuron_axis: int | Callable[[str, tuple], int] = 0,
    adam_patterns: Sequence[str] = ADAM_PATTERNS,
    head_patterns: Sequence[str] = HEAD_PATTERNS,
    row_patterns: Sequence[str] = ROW_PATTERNS,
    no_decay_patterns: Sequence[str] = NO_DECAY_PATTERNS,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam-mini: Adam with one second moment per block of parameters.

    For each block :math:`B` of a leaf (its elements :math:`g_{t,B}`):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_{t,B} = \beta_2 v_{t-1,B} + (1-\beta_2)\,
            \tfrac{1}{|B|} \textstyle\sum_{i \in B} g_{t,i}^2, \\
        \theta_{t,B} = \theta_{t-1,B} - \eta_t \Big(
            \frac{m_{t,B}/(1-\beta_1^t)}{\sqrt{v_{t,B}/(1-\beta_2^t)} + \epsilon}
            + \lambda \theta_{t-1,B} \Big)

    The blocks follow the leaf's path, lower-cased and dotted
    (``{"layers": [{"q_proj": {"kernel": w}}]}`` is ``layers.0.q_proj.kernel``),
    matched by substring in this order, as the reference matches PyTorch
    parameter names:

    * ``adam_patterns`` (``bias``): one :math:`v` per element (Adam);
    * ``head_patterns`` (``q_proj``, ``k_proj``, ``wq``, ``wk``, ``query``,
      ``key``): one per head, a head being ``dim·dim/n_heads`` consecutive
      elements with the neuron axis first (the reference's ``view(-1,
      dim·dim/n_heads)`` of an ``(out, in)`` weight; grouped-query keys get
      fewer heads);
    * ``row_patterns`` (embeddings ``embed``/``embd``/``wte``, outputs
      ``lm_head``/``output``/``final_layer``, values ``v_proj``/``wv``/
      ``value``, ``o_proj``/``wo``/``attn.proj``, MLPs ``feed_forward``/
      ``linear``/``mlp``): one per index of ``neuron_axis`` (a token or an
      output neuron); a 1-D such leaf gets Adam;
    * anything else (norms, …): one :math:`v` for the whole leaf.

    ``neuron_axis`` is 0 for PyTorch's ``(out, in)`` weights and for embedding
    tables (``(vocab, d)`` in both libraries); a Flax ``Dense`` kernel is
    ``(in, out)``: give 1 there, or a function ``(path, shape) -> axis``.
    Leaves whose path contains a ``no_decay_patterns`` entry (``norm``, ``ln``,
    ``bias``) are not decayed. Zero-size leaves get Adam. The state holds one
    first moment per parameter and a handful of second moments: about half of
    Adam's memory.

    Same numbers as the official ``adam_mini.Adam_mini`` 1.1.1 (one device),
    with the same names and ``dim``/``n_heads``.

    Reference: Zhang, Chen, Li, Ding, Chen, Ye, Luo & Sun, 2024, "Adam-mini:
    Use Fewer Learning Rates To Gain More".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment decays in [0, 1).
      eps: :math:`\epsilon` >= 0 outside the root.
      weight_decay: :math:`\lambda` >= 0 (or a schedule), decoupled.
      dim, n_heads: the model width and number of heads (the reference's).
      neuron_axis: see above.
      adam_patterns, head_patterns, row_patterns, no_decay_patterns: the
        name lists (sequences of substrings).
      mu_dtype: dtype of the first moment (default: the params').

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adam_mini
      >>> params = {"norm": jnp.zeros(2), "mlp": {"w": jnp.zeros((2, 2))}}
      >>> opt = adam_mini(learning_rate=0.1)
      >>> w = jnp.array([[1.0, 1.0], [2.0, -2.0]])
      >>> g = {"norm": jnp.array([3.0, 4.0]), "mlp": {"w": w}}
      >>> u, _ = opt.update(g, opt.init(params), params)
      >>> [round(float(x), 4) for x in u["norm"]]  # one v: mean(g²) = 12.5
      [-0.0849, -0.1131]
      >>> [round(float(x), 4) for x in u["mlp"]["w"].ravel()]  # one v per row
      [-0.1, -0.1, -0.1, 0.1]
    """
    owner = "adam_mini"
    with _validate.renamed_errors("scale_by_adam_mini", owner):
        scaling = scale_by_adam_mini(
            b1,
            b2,
            eps,
            dim=dim,
            n_heads=n_heads,
            neuron_axis=neuron_axis,
            adam_patterns=adam_patterns,
            head_patterns=head_patterns,
            row_patterns=row_patterns,
            mu_dtype=mu_dtype,
        )
    if isinstance(no_decay_patterns, str) or not all(
        isinstance(p, str) for p in no_decay_patterns
    ):
        raise TypeError(
            f"{owner}: `no_decay_patterns` must be a sequence of strings, got "
            f"{no_decay_patterns!r}."
        )
    no_decay = tuple(no_decay_patterns)

    def decay_mask(params):
        names = dotted_paths(params)
        flags = [not any(p in n for p in no_decay) for n in names]
        return jax.tree.structure(params).unflatten(flags)

    with _validate.renamed_errors("add_decayed_weights", owner):
        decay = add_decayed_weights(weight_decay, decay_mask)
    return chain(scaling, decay, learning_rate_step(owner, learning_rate))
