"""Every figure of the project: matplotlib only, no state."""

from ._classify import classifier_dynamics as classifier_dynamics
from ._classify import decision_regions as decision_regions
from ._classify import training_curves as training_curves
from ._crossval import crossval_error_sweep as crossval_error_sweep
from ._crossval import crossval_nfe as crossval_nfe
from ._scratch import plot_scratch_loss as plot_scratch_loss
from ._scratch import plot_scratch_trajectory as plot_scratch_trajectory
from ._style import save_figure as save_figure
