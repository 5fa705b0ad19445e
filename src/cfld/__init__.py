"""cfld: Coarse-to-Fine Latent Diffusion (CVPR 2024) for pose-guided person image synthesis.

Heavy modules (torch, diffusers) are imported lazily so that ``import cfld`` and ``cfld --help``
stay fast.
"""

__version__ = "0.1.0.dev0"

from .errors import CFLDError, InputError  # noqa: E402,F401
