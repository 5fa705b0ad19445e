"""The ``cfld`` command line.

Subcommands live in ``cfld.commands.<name>`` and are imported only when used, so ``cfld --help`` is
instant. Errors about user input (:class:`cfld.errors.CFLDError`) are printed as one sentence and exit
with status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from . import __version__
from .errors import CFLDError

# name -> (module, attribute, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "pose": ("cfld.commands.pose", "pose", "Read, convert, retarget and draw human poses (OpenPose-18)."),
    "transfer": ("cfld.commands.transfer", "transfer", "Re-pose a person photo into one or more target poses."),
    "animate": ("cfld.commands.animate", "animate", "Animate a person through a sequence of poses (frames, GIF, MP4)."),
    "edit": ("cfld.commands.edit", "edit", "Appearance editing: style transfer by mask, style interpolation."),
    "app": ("cfld.commands.app", "app", "Serve the web app on 127.0.0.1 (re-pose, edit, animate in the browser)."),
    "demo": ("cfld.commands.demo", "demo", "Run the offline demo (no downloads) and write its pictures."),
    "convert": ("cfld.commands.convert", "convert", "Convert CFLD checkpoints between the original and our format."),
    "prepare": ("cfld.commands.prepare", "prepare", "Build the DeepFashion / Market-1501 train and test sets."),
    "evaluate": ("cfld.commands.evaluate", "evaluate", "Score generated images: FID, LPIPS, SSIM, PSNR as in the paper."),
    "train": ("cfld.commands.train", "train", "Train CFLD from a recipe (preset or YAML/JSON) with accelerate."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as err:
            if err.name == module:
                return None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cfld")
def cli() -> None:
    """cfld: re-pose a person photo with Coarse-to-Fine Latent Diffusion (CVPR 2024).

    Run `cfld COMMAND --help` for the options of each command.
    """


def main(argv: list[str] | None = None) -> int:
    """Console entry point: turn our input errors into one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="cfld", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    except CFLDError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
