"""The ``cfld`` command line.

Subcommands live in ``cfld.commands.<name>`` and are imported only when used, so ``cfld --help`` is
instant. Every failure ends here as one line on stderr, ``error: <what>: <fault>`` (:func:`main`):

* errors about user input (:class:`cfld.errors.CFLDError`), wrong options (click's usage errors) and
  operating-system refusals that name a file (a read-only folder, a full disk) exit with status 2;
* anything else is a bug of ours: one line says so and exits with status 1; ``cfld --debug ...`` or
  ``CFLD_DEBUG=1`` shows its traceback instead (the test suite runs that way, so no bug hides there).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

import click

from . import __version__
from .errors import CFLDError, describe_unexpected

# name -> (module, attribute, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "pose": ("cfld.commands.pose", "pose", "Read, convert, retarget and draw human poses (OpenPose-18)."),
    "frame": ("cfld.commands.frame", "frame",
              "Frame person photos as the model's training photos are (crop, pose, record)."),
    "transfer": ("cfld.commands.transfer", "transfer", "Re-pose a person photo into one or more target poses."),
    "animate": ("cfld.commands.animate", "animate", "Animate a person through a sequence of poses (frames, GIF, MP4)."),
    "edit": ("cfld.commands.edit", "edit", "Appearance editing: style transfer by mask, style interpolation."),
    "app": ("cfld.commands.app", "app", "Serve the web app on 127.0.0.1 (re-pose, edit, animate in the browser)."),
    "demo": ("cfld.commands.demo", "demo", "Run the offline demo (no downloads) and write its pictures."),
    "convert": ("cfld.commands.convert", "convert", "Convert CFLD checkpoints between the original and our format."),
    "prepare": ("cfld.commands.prepare", "prepare",
                "Build the DeepFashion / Market-1501 train and test sets, or one of your own photos."),
    "sample": ("cfld.commands.sample", "sample",
               "Generate every pair of a prepared dataset split (resumable, multi-GPU)."),
    "evaluate": ("cfld.commands.evaluate", "evaluate",
                 "Score generated images: FID, LPIPS, SSIM, PSNR as in the paper."),
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


_debug_flag = [False]


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    _debug_flag[0] = _debug_flag[0] or value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cfld")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
              help="Show the Python traceback of an unexpected error (also: CFLD_DEBUG=1).")
def cli() -> None:
    """cfld: re-pose a person photo with Coarse-to-Fine Latent Diffusion (CVPR 2024).

    Run `cfld COMMAND --help` for the options of each command.
    """


def debugging() -> bool:
    """Whether unexpected errors show their traceback (``--debug`` or ``CFLD_DEBUG=1``)."""
    return _debug_flag[0] or os.environ.get("CFLD_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: every failure becomes one line on stderr (see the module docstring)."""
    _debug_flag[0] = False
    try:
        with warnings.catch_warnings():
            if not debugging():  # the libraries' own deprecation notes are not the user's business; ours are
                warnings.filterwarnings("ignore", module=r"(?!cfld(\.|$))")
            cli.main(args=argv, prog_name="cfld", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.UsageError as err:
        where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        _error(f"{err.format_message()}{where}")
        return 2
    except click.ClickException as err:
        _error(err.format_message())
        return err.exit_code
    except CFLDError as err:
        _error(str(err))
        return 2
    except Exception as err:  # noqa: BLE001 - the boundary: one line, never a traceback (unless --debug)
        message, code = describe_unexpected(err)
        if code == 1 and debugging():
            raise
        _error(message)
        return code
    return 0


def _error(message: str) -> None:
    click.echo("error: " + " ".join(message.split()), err=True)


if __name__ == "__main__":
    sys.exit(main())
