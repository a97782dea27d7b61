"""Every figure of the project: matplotlib only, no state."""

from ._bench import bench_counting as bench_counting
from ._bench import bench_length as bench_length
from ._bench import bench_overhead as bench_overhead
from ._bench import bench_size as bench_size
from ._bench import bench_speedup as bench_speedup
from ._bench import bench_table as bench_table
from ._classify import classifier_dynamics as classifier_dynamics
from ._classify import decision_regions as decision_regions
from ._classify import training_curves as training_curves
from ._crossval import crossval_error_sweep as crossval_error_sweep
from ._crossval import crossval_nfe as crossval_nfe
from ._dynamics import dynamics_animation as dynamics_animation
from ._dynamics import dynamics_fields as dynamics_fields
from ._dynamics import dynamics_loss as dynamics_loss
from ._dynamics import dynamics_snapshots as dynamics_snapshots
from ._dynamics import dynamics_trajectories as dynamics_trajectories
from ._image import image_accuracy as image_accuracy
from ._image import image_nfe as image_nfe
from ._image import image_time as image_time
from ._scratch import plot_scratch_loss as plot_scratch_loss
from ._scratch import plot_scratch_trajectory as plot_scratch_trajectory
from ._style import save_figure as save_figure
