"""The ``optax.contrib`` namespace: every name, with Optax's signatures.

Code written against ``optax.contrib.X`` runs with ``gradtx.contrib.X``.
Optimizers that gradtx already had (Muon, Prodigy, Sophia, ADOPT, AdEMAMix,
schedule-free, reduce-on-plateau) are re-exported from where they live
(``gradtx.transforms``, ``gradtx.optimizers``, ``gradtx.wrappers``), so
``gradtx.contrib.muon is gradtx.muon``; the others have one module each in
this package (``cocob.py``, ``dog.py``, ``madgrad.py``, …).
"""

from ..optimizers.ademamix import ademamix as ademamix
from ..optimizers.ademamix import simplified_ademamix as simplified_ademamix
from ..optimizers.adopt import adopt as adopt
from ..optimizers.muon import muon as muon
from ..optimizers.prodigy import prodigy as prodigy
from ..optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from ..optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from ..optimizers.sophia import sophia as sophia
from ..transforms.ademamix import ScaleByAdemamixState as ScaleByAdemamixState
from ..transforms.ademamix import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from ..transforms.ademamix import scale_by_ademamix as scale_by_ademamix
from ..transforms.ademamix import (
    scale_by_simplified_ademamix as scale_by_simplified_ademamix,
)
from ..transforms.adopt import scale_by_adopt as scale_by_adopt
from ..transforms.muon import MuonDimensionNumbers as MuonDimensionNumbers
from ..transforms.muon import MuonState as MuonState
from ..transforms.muon import scale_by_muon as scale_by_muon
from ..transforms.prodigy import ProdigyState as ProdigyState
from ..transforms.sophia import HutchinsonState as HutchinsonState
from ..transforms.sophia import SophiaState as SophiaState
from ..transforms.sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from ..wrappers.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from ..wrappers.plateau import reduce_on_plateau as reduce_on_plateau
from ..wrappers.schedule_free import ScheduleFreeState as ScheduleFreeState
from ..wrappers.schedule_free import schedule_free as schedule_free
from ..wrappers.schedule_free import (
    schedule_free_eval_params as schedule_free_eval_params,
)

# The contrib optimizers with a module of their own in this package (written
# on other branches, merged by the lead): one import line per name.
from .asynchronous_centering import acprop as acprop
from .asynchronous_centering import scale_by_acprop as scale_by_acprop
from .coin_betting import COCOBState as COCOBState
from .coin_betting import cocob as cocob
from .coin_betting import scale_by_cocob as scale_by_cocob
from .complex_split import SplitRealAndImaginaryState as SplitRealAndImaginaryState
from .complex_split import split_real_and_imaginary as split_real_and_imaginary
from .d_adaptation import DAdaptAdamWState as DAdaptAdamWState
from .d_adaptation import dadapt_adamw as dadapt_adamw
from .distance_over_gradients import DoGState as DoGState
from .distance_over_gradients import DoWGState as DoWGState
from .distance_over_gradients import dog as dog
from .distance_over_gradients import dowg as dowg
from .dual_averaging import MadgradState as MadgradState
from .dual_averaging import madgrad as madgrad
from .dual_averaging import scale_by_madgrad as scale_by_madgrad
from .low_rank_projection import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from .low_rank_projection import GaLoreState as GaLoreState
from .low_rank_projection import galore as galore
from .low_rank_projection import scale_by_galore as scale_by_galore
from .mechanic import MechanicState as MechanicState
from .mechanic import mechanize as mechanize
from .model_based_momentum import MomoAdamState as MomoAdamState
from .model_based_momentum import MomoState as MomoState
from .model_based_momentum import momo as momo
from .model_based_momentum import momo_adam as momo_adam
from .normalization import NormalizeState as NormalizeState
from .normalization import normalize as normalize
from .privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from .privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
)
from .privacy import dpsgd as dpsgd
from .sharpness_aware import SAMState as SAMState
from .sharpness_aware import sam as sam

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "HutchinsonState",
    "MadgradState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "MuonDimensionNumbers",
    "MuonState",
    "NormalizeState",
    "ProdigyState",
    "ReduceLROnPlateauState",
    "SAMState",
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ScheduleFreeState",
    "SophiaState",
    "SplitRealAndImaginaryState",
    "acprop",
    "ademamix",
    "adopt",
    "cocob",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dog",
    "dowg",
    "dpsgd",
    "galore",
    "hutchinson_estimator_diag_hessian",
    "madgrad",
    "mechanize",
    "momo",
    "momo_adam",
    "muon",
    "normalize",
    "prodigy",
    "reduce_on_plateau",
    "sam",
    "scale_by_acprop",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_cocob",
    "scale_by_galore",
    "scale_by_madgrad",
    "scale_by_muon",
    "scale_by_simplified_ademamix",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "simplified_ademamix",
    "sophia",
    "split_real_and_imaginary",
]
