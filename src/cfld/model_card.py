"""The model card (``README.md``) that :meth:`cfld.CFLDPipeline.save_pretrained` writes beside a model, and that
``push_to_hub`` uploads where the Hub repository has no card of its own.

It says what the model is (CFLD, the paper, the pipeline class and how to load it), its sizes, how it was made
(``pipe.provenance``: converted from the original release, trained by ``cfld train``, ...), and leaves the licence
for the user to fill in: the weights' licence depends on what they were trained on (DeepFashion's images are for
non-commercial research) and on Stable Diffusion's, which no tool can decide.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__

DIFFUSERS_BLANK_CARD = "This model card has been automatically generated."
"""A sentence of the blank card diffusers writes when a Hub repository has none (ours replaces that one)."""


def model_card(pipe, name: str) -> str:
    """The card of ``pipe``, saved as ``name``."""
    config = pipe.model.config
    sizes = (f"source encoder input {_hw(config.cond_size)}, pose input {_hw(config.pose_size)}, generation size "
             f"{_hw(config.image_size)}; Swin embed {config.swin_embed_dim}, {config.num_queries} prompt queries of "
             f"{config.prompt_dim}, guidance {pipe.guidance_type}")
    parameters = sum(p.numel() for p in pipe.model.parameters()) + sum(p.numel() for p in pipe.unet.parameters())
    how = pipe.provenance or "not recorded"
    return f"""---
library_name: diffusers
pipeline_tag: image-to-image
license: # fill in: the weights' licence follows their training data and Stable Diffusion's (see below)
tags:
- cfld
- pose-transfer
- person-image-synthesis
---

# {name}

A **Coarse-to-Fine Latent Diffusion** (CFLD, CVPR 2024, [paper](https://arxiv.org/abs/2402.18078)) model for
pose-guided person image synthesis: a photo of a person and a target pose in, that person in the new pose out.
It is a diffusers pipeline of class `CFLDPipeline` from the [cfld](https://pypi.org/project/cfld/) library
(`pip install cfld`); its condition model `model/` is a `cfld.CFLDModel`, its `unet/`, `vae/` and `scheduler/` are
plain diffusers components.

```python
import torch
from cfld import CFLDPipeline

pipe = CFLDPipeline.from_pretrained("{name}", torch_dtype=torch.float16).to("cuda")
image = pipe("person.jpg", "pose.json").images[0]
```

On the command line: `cfld transfer -s person.jpg -p pose.json -m {name}`.

## Model

- Sizes: {sizes}.
- Parameters: {parameters / 1e6:.1f} M (condition model and UNet).
- Saved by cfld {__version__}.

## How it was made

{how}.

## Licence

Left to you: fill in the `license` field above. The weights' licence follows what they were trained on (the
DeepFashion images are for non-commercial research use) and Stable Diffusion 1.5's (CreativeML Open RAIL-M).
"""


def provenance_of(readme: Path) -> str | None:
    """The "How it was made" line of a card we wrote (None: no such card), so that a re-saved model keeps it."""
    if not readme.is_file():
        return None
    found = re.search(r"^## How it was made\n\n(.+?)\.?\n", readme.read_text(encoding="utf-8", errors="replace"), re.M)
    return None if found is None or found[1] == "not recorded" else found[1]


def is_blank(readme: Path) -> bool:
    """Whether ``readme`` is missing or diffusers' blank card."""
    return not readme.is_file() or DIFFUSERS_BLANK_CARD in readme.read_text(encoding="utf-8", errors="replace")


def _hw(size) -> str:
    return f"{size[0]}x{size[1]}"
