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
from ..transforms.prodigy import prodigy as prodigy
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
from .acprop import acprop as acprop
from .acprop import scale_by_acprop as scale_by_acprop
from .cocob import COCOBState as COCOBState
from .cocob import cocob as cocob
from .cocob import scale_by_cocob as scale_by_cocob
from .complex_split import SplitRealAndImaginaryState as SplitRealAndImaginaryState
from .complex_split import split_real_and_imaginary as split_real_and_imaginary
from .dadapt import DAdaptAdamWState as DAdaptAdamWState
from .dadapt import dadapt_adamw as dadapt_adamw
from .dog import DoGState as DoGState
from .dog import DoWGState as DoWGState
from .dog import dog as dog
from .dog import dowg as dowg
from .galore import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from .galore import GaLoreState as GaLoreState
from .galore import galore as galore
from .galore import scale_by_galore as scale_by_galore
from .madgrad import MadgradState as MadgradState
from .madgrad import madgrad as madgrad
from .madgrad import scale_by_madgrad as scale_by_madgrad
from .mechanic import MechanicState as MechanicState
from .mechanic import mechanize as mechanize
from .momo import MomoAdamState as MomoAdamState
from .momo import MomoState as MomoState
from .momo import momo as momo
from .momo import momo_adam as momo_adam
from .normalize import NormalizeState as NormalizeState
from .normalize import normalize as normalize
from .privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from .privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
)
from .privacy import dpsgd as dpsgd
from .sam import SAMState as SAMState
from .sam import sam as sam

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
