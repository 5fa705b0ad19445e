"""``cfld convert``: original CFLD checkpoints <-> our safetensors checkpoints."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command("convert")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--config", "config_spec", metavar="PRESET|YAML|JSON",
              help="Model configuration of an ORIGINAL source: 'sd15', 'tiny', the original config.yaml or our "
                   "config.json. Default: SOURCE/config.yaml if present, else 'sd15'.")
@click.option("--unet-config", type=click.Path(exists=True, dir_okay=False),
              help="A diffusers UNet config.json, for an original source whose UNet is not Stable Diffusion 1.5.")
@click.option("--overwrite", is_flag=True, help="Replace checkpoint files already in DEST.")
def convert(source: str, dest: str, config_spec: str | None, unet_config: str | None, overwrite: bool) -> None:
    """Convert a CFLD checkpoint folder to the other format.

    An original checkpoint (SOURCE/pytorch_model.bin + pytorch_model_1.bin, as released with the paper)
    becomes ours (DEST/config.json, model.safetensors, unet.safetensors), and ours becomes an original
    one. Every key is checked: a checkpoint that does not fit the configuration is refused, naming the
    missing and unexpected keys.

    \b
    Examples:
      cfld convert checkpoints/ cfld-sd15/          # released weights -> safetensors
      cfld convert cfld-sd15/ original/             # and back
    """
    from .. import checkpoint as ckpt
    from ..io import check_output_folder

    src = Path(source)
    check_output_folder(dest)
    if ckpt.is_original_checkpoint(src):
        unet = ckpt.read_unet_config(unet_config) if unet_config else None
        model, unet = ckpt.load_original(src, ckpt.resolve_config(config_spec, src, unet))
        ckpt.save_checkpoint(dest, model, unet, overwrite=overwrite)
        kind = "our safetensors checkpoint"
    elif (src / ckpt.MODEL).is_file():
        if config_spec or unet_config:
            raise InputError(src, "is our checkpoint, whose config.json is used; drop --config/--unet-config")
        model, unet = ckpt.load_checkpoint(src)
        ckpt.save_original(dest, model, unet, overwrite=overwrite)
        kind = "an original checkpoint"
    else:
        raise InputError(src, f"holds neither {ckpt.ORIGINAL_MODEL} (original) nor {ckpt.MODEL} (ours)")
    click.echo(f"wrote {kind} to {dest}")
