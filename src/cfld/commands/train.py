"""``cfld train``: train CFLD from a recipe (a bundled preset or a YAML/JSON file) with accelerate."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command("train")
@click.option("-c", "--config", "config_spec", metavar="PRESET|FILE",
              help="Training recipe: a preset (see --list-presets) or a YAML/JSON file. With --resume it "
                   "defaults to OUTPUT/config.json.")
@click.option("-o", "--output", required=False, type=click.Path(file_okay=False),
              help="Run folder: checkpoints/, model/ (the trained pipeline), logs/ (TensorBoard), config.json.")
@click.option("--resume", "resume", is_flag=False, flag_value="latest", default=None, metavar="[CHECKPOINT]",
              help="Continue exactly where the newest checkpoint in OUTPUT (or the given checkpoint folder) left off.")
@click.option("--max-steps", type=click.IntRange(min=1),
              help="Stop after this many optimizer steps (overrides the recipe).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change one option of the recipe (repeat for several): --set data.root=data/mine "
                   "--set init_checkpoint=cfld-sd15 --set lr=1e-5. VALUE is read as YAML (no anchors or "
                   "aliases).")
@click.option("--new-data", is_flag=True,
              help="With --resume: go on although the dataset is not the one the checkpoint was trained on "
                   "(fine-tuning on purpose); without it such a resume is refused, saying what changed.")
@click.option("--overwrite", is_flag=True,
              help="Start again in an OUTPUT that already holds a run (deletes its checkpoints).")
@click.option("--list-presets", is_flag=True, help="List the bundled recipes and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(config_spec: str | None, output: str | None, resume: str | None, max_steps: int | None,
          overrides: tuple[str, ...], new_data: bool, overwrite: bool, list_presets: bool, no_progress: bool) -> None:
    """Train CFLD: L_mse + L_rec, cubic timesteps, condition dropout, Adam with warmup and decay.

    Periodic and final checkpoints go to OUTPUT/checkpoints/step-N (our safetensors format plus
    optimizer, scheduler and random states); the trained pipeline to OUTPUT/model, usable by
    `cfld transfer -m OUTPUT/model`. A NaN loss stops the run and keeps the last checkpoint. On a
    prepared dataset the first run encodes every training photo once into DATASET/latent-cache
    (cache_latents; --set cache_latents=false to encode at every step instead); every shard is
    checked against the photos and the VAE when a run starts and encoded again if it does not
    match. The run records its data (OUTPUT/data.json); --resume refuses data that changed
    since, unless --new-data. Memory and speed
    options: docs/training.md, "Memory and speed".

    \b
    Examples:
      cfld train --config synthetic-cpu --output runs/synthetic          # test size, on a CPU
      cfld train --output runs/synthetic --resume                        # continue after an interruption
      cfld train --config finetune-256 --set data.root=data/mine \\
          --set init_checkpoint=cfld-sd15 --output runs/mine               # fine-tune on your own photos
      accelerate launch --multi_gpu --num_processes 8 -m cfld train \\
          --config deepfashion-256 --output runs/df256                     # the paper, 8 GPUs
      accelerate launch --num_machines 2 --machine_rank 0 --main_process_ip HOST ... -m cfld train ...
    """
    from ..training import TrainConfig, Trainer, presets

    if list_presets:
        for name in presets():
            click.echo(name)
        return
    if output is None:
        raise InputError("cfld train", "needs --output FOLDER for checkpoints and the trained model")
    if new_data and resume is None:
        raise InputError("cfld train", "--new-data goes with --resume (it lets a resumed run go on with other data)")
    if config_spec is None:
        if resume is None:
            raise InputError("cfld train", "needs --config PRESET|FILE (or --resume to continue a run in --output)")
        config_spec = str(Path(output) / "config.json")
    config = TrainConfig.load(config_spec, overrides)
    if max_steps is not None:
        config.max_steps = max_steps
    trainer = Trainer(config, output, resume=(True if resume == "latest" else resume) if resume else False,
                      overwrite=overwrite, new_data=new_data, progress=not no_progress)
    final = trainer.train()
    click.echo(f"done: {final}")
