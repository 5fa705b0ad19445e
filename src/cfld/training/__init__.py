"""Training CFLD: the recipe (:class:`TrainConfig`, bundled presets) and the accelerate loop (:class:`Trainer`).

Where things are: :mod:`.config` the recipe's keys; :mod:`.step` one training step (models, optimizer and
schedule, the loss of a batch, the update); :mod:`.trainer` the loop; :mod:`.preflight` the checks before a
run writes anything; :mod:`.checkpoints` the checkpoint files; :mod:`.evaluation` evaluation and sample grids
during training; :mod:`.datasets` the datasets a recipe names; :mod:`.autoencoder` the test-size VAE.

    from cfld.training import TrainConfig, Trainer
    Trainer(TrainConfig.load("synthetic-cpu"), "runs/synthetic").train()

or ``cfld train --config synthetic-cpu --output runs/synthetic``; ``accelerate launch -m cfld train ...``
for several GPUs or machines.
"""

from .config import TrainConfig, presets
from .datasets import register_dataset
from .step import cubic_timesteps, lr_factor
from .trainer import StepResult, Trainer, TrainingError

__all__ = ["StepResult", "TrainConfig", "Trainer", "TrainingError", "cubic_timesteps", "lr_factor", "presets",
           "register_dataset"]
