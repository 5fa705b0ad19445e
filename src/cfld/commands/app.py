"""``cfld app``: the web app on 127.0.0.1 (Gradio, the ``app`` extra)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import app as web
from ..devices import DTYPES, resolve_device, resolve_dtype
from ..errors import InputError, one_line
from ..model_names import demo_model_dir
from .options import load_pipeline, model_option


def default_model() -> Path | None:
    """The offline demo model shipped inside the package, once there is one (``cfld/assets/demo_model``)."""
    folder = demo_model_dir()
    return folder if (folder / "model_index.json").is_file() else None


@click.command("app")
@model_option("CFLD model folder (as for `cfld transfer`); default: the bundled demo model, when installed.",
              required=False)
@click.option("--base", metavar="SD15", help="Stable Diffusion 1.5 for an original checkpoint folder.")
@click.option("--port", type=click.IntRange(1024, 65535), default=7860, show_default=True,
              help="Port on 127.0.0.1 (the app is never reachable from other machines).")
@click.option("--steps", "default_steps", type=click.IntRange(1, 100), default=50, show_default=True,
              help="Denoising steps preset in the page (fewer: faster on a CPU).")
@click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if available).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default=None,
              help="Weights' precision (default: fp16 on CUDA, fp32 elsewhere).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def app(model_dir, base, port, default_steps, device, dtype, open_browser) -> None:
    """Serve the web app at http://127.0.0.1:PORT: re-pose, edit and animate in the browser.

    Upload a person photo and pick a pose from a gallery of real DeepFashion poses, from another photo
    (needs the 'detect' extra) or from a pose JSON file; the Edit and Animate tabs do what `cfld edit` and
    `cfld animate` do. Uploads are limited to 20 MiB and 25 megapixels; one generation runs at a time.
    Stop the server with Ctrl+C.

    \b
    Examples:
      cfld app -m cfld-folder
      cfld app -m checkpoints --base stable-diffusion-v1-5/stable-diffusion-v1-5 --port 8080
      cfld app -m cfld-folder --device cpu --steps 20
    """
    web.import_gradio()  # a missing extra is reported before the model loads
    if model_dir is None:
        model_dir = default_model()
        if model_dir is None:
            raise click.UsageError("give the model to serve with --model (a folder from `cfld convert` / "
                                   "save_pretrained, or the released checkpoints; see the README, 'Weights and quick "
                                   "start')")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    pipe = load_pipeline(model_dir, base=base, torch_dtype=torch_dtype, device=device)
    click.echo(f"model {model_dir} on {device}; serving on http://{web.HOST}:{port} (Ctrl+C stops)")
    try:
        web.launch(web.build_app(pipe, default_steps), port=port, open_browser=open_browser)
    except OSError as error:  # Gradio's "Cannot find empty port", or the operating system's "address in use"
        raise InputError(f"--port {port}", f"cannot be served on ({one_line(error, 200)}); "
                                           "is another server using it? Pass another --port") from None
