"""One process of tests/test_training.py::test_two_processes_stay_in_sync (run by `accelerate launch`).

Trains the given config into the given folder and writes, per process, a fingerprint of all trainable
weights after every step to ``weights-rank{R}.json``.
"""

import hashlib
import json
import sys
from pathlib import Path

from cfld.training import TrainConfig, Trainer

config = TrainConfig.load(sys.argv[1])
output = Path(sys.argv[2])
trainer = Trainer(config, output, progress=False)
fingerprints = []


def fingerprint(result):
    digest = hashlib.sha256()
    for module in (trainer.model, trainer.unet):
        for parameter in module.parameters():
            digest.update(parameter.detach().cpu().numpy().tobytes())
    fingerprints.append(digest.hexdigest())


trainer.train(fingerprint)
assert trainer.accelerator.num_processes == 2, trainer.accelerator.state
assert trainer.module.gradient_as_bucket_view  # the recipe's default: DDP keeps no second copy of the gradients
(output / f"weights-rank{trainer.accelerator.process_index}.json").write_text(json.dumps(fingerprints))
