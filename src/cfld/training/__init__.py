"""Training CFLD: the recipe (:class:`TrainConfig`, bundled presets) and the accelerate loop (:class:`Trainer`).

    from cfld.training import TrainConfig, Trainer
    Trainer(TrainConfig.load("synthetic-cpu"), "runs/synthetic").train()

or ``cfld train --config synthetic-cpu --output runs/synthetic``; ``accelerate launch -m cfld train ...``
for several GPUs or machines.
"""

from .config import TrainConfig, presets
from .datasets import register_dataset
from .trainer import StepResult, Trainer, TrainingError, cubic_timesteps, lr_factor

__all__ = ["StepResult", "TrainConfig", "Trainer", "TrainingError", "cubic_timesteps", "lr_factor", "presets",
           "register_dataset"]
