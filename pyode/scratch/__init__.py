"""A neural ODE from scratch in NumPy: solvers, a hand-written adjoint, clipping and Adam.

No autodiff library is imported here. The derivation of the adjoint is in docs/adjoint.md;
the A-to-B regression trained with it is `pyode.experiments.regression`.
"""

from ._field import ACTIVATIONS as ACTIVATIONS
from ._field import SECOND_DERIVATIVES as SECOND_DERIVATIVES
from ._field import FieldVJP as FieldVJP
from ._field import ScratchCNF as ScratchCNF
from ._field import ScratchField as ScratchField
from ._field import ScratchMLP as ScratchMLP
from ._field import ScratchSecondOrder as ScratchSecondOrder
from ._field import ScratchVanDerPol as ScratchVanDerPol
from ._field import flatten_weights as flatten_weights
from ._field import random_mlp as random_mlp
from ._field import unflatten_weights as unflatten_weights
from ._gradients import RESTARTS as RESTARTS
from ._gradients import Gradients as Gradients
from ._gradients import adjoint_gradients as adjoint_gradients
from ._gradients import augmented_dynamics as augmented_dynamics
from ._gradients import backprop_gradients as backprop_gradients
from ._gradients import linear_loss as linear_loss
from ._optim import Adam as Adam
from ._optim import AdamState as AdamState
from ._optim import clip_by_global_norm as clip_by_global_norm
from ._solvers import TABLEAUS as TABLEAUS
from ._solvers import ODESolution as ODESolution
from ._solvers import Tableau as Tableau
from ._solvers import odeint as odeint
