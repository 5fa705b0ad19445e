"""``cfld convert``: the released original CFLD checkpoints <-> a CFLD pipeline folder in diffusers' layout."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..io import check_output_folder
from .options import load_pipeline


@click.command("convert")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--to", "target", type=click.Choice(["diffusers", "original"]), default=None,
              help="What DEST becomes. Default: a pipeline folder in diffusers' layout, except from one already in "
                   "that layout, which becomes the original checkpoints.")
@click.option("--base", metavar="SD15",
              help="Stable Diffusion 1.5, whose VAE and noise schedule a pipeline folder made from the original (or "
                   "from a bare checkpoint) takes: hub id (the default), diffusers folder or single file.")
@click.option("--config", "config_spec", metavar="PRESET|YAML|JSON",
              help="Model configuration of an ORIGINAL source: 'sd15', 'tiny', the original config.yaml or our "
                   "config.json. Default: SOURCE/config.yaml if present, else 'sd15'.")
@click.option("--unet-config", type=click.Path(exists=True, dir_okay=False),
              help="A diffusers UNet config.json, for an original source whose UNet is not Stable Diffusion 1.5.")
@click.option("--overwrite", is_flag=True, help="Replace what is already at DEST.")
def convert(source: str, dest: str, target: str | None, base: str | None, config_spec: str | None,
            unet_config: str | None, overwrite: bool) -> None:
    """Convert a CFLD model folder to the other format.

    The released original checkpoints (SOURCE/pytorch_model.bin + pytorch_model_1.bin) become a pipeline
    folder in diffusers' layout (DEST/model_index.json, model/, unet/, vae/, scheduler/, README.md; the
    VAE and noise schedule from --base), which CFLDPipeline.from_pretrained and every -m load. A folder of
    cfld's older layouts (cfld/ inside, or a bare config.json + model.safetensors + unet.safetensors)
    becomes one too. A pipeline folder becomes the original checkpoints again (--to original), which
    the original code reads. Every key is checked: a checkpoint that does not fit the configuration is
    refused, naming the missing and unexpected keys.

    \b
    Examples:
      cfld convert checkpoints/ cfld-sd15/                  # released weights -> diffusers' layout
      cfld convert checkpoints/ cfld-sd15/ --base sd15/     # with Stable Diffusion 1.5 from a local folder
      cfld convert cfld-sd15/ original/                     # and back
    """
    from .. import checkpoint as ckpt
    from .. import model_folders

    src = Path(source)
    kind = model_folders.layout(src)
    if kind is None:
        raise InputError(src, f"holds neither {ckpt.ORIGINAL_MODEL} (the original checkpoints) nor a CFLD model folder "
                              "(model_index.json, or config.json + model.safetensors)")
    if kind != "original" and (config_spec or unet_config):
        raise InputError(src, "is a cfld model folder, whose own config.json is used; drop --config/--unet-config")
    target = target or ("original" if kind == "diffusers" else "diffusers")
    if target == "original" and kind == "original":
        raise InputError(src, "already holds the original checkpoints; --to diffusers makes a pipeline folder of them")
    check_output_folder(dest)
    if target == "original":
        model, unet = model_folders.model_and_unet(src, None)
        ckpt.save_original(dest, model, unet, overwrite=overwrite)
        click.echo(f"wrote the original checkpoints ({ckpt.ORIGINAL_MODEL}, {ckpt.ORIGINAL_UNET}) to {dest}")
        return
    if Path(dest).exists() and not overwrite:
        raise InputError(dest, "already exists; pass --overwrite to replace it")
    config = config_spec
    if kind == "original" and unet_config:
        config = ckpt.resolve_config(config_spec, src, ckpt.read_unet_config(unet_config))
    pipe = load_pipeline(src, base=base, config=config)
    pipe.save_pretrained(dest, overwrite=overwrite)
    click.echo(f"wrote a CFLD pipeline folder in diffusers' layout to {dest} ({pipe.provenance})")
