"""Serving the app: Gradio imported on demand (the ``app`` extra), every action guarded so that a failure is one
sentence in the page, the server launched on 127.0.0.1 with the upload limit, and the app's own temporary folder
removed at exit."""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import shutil
import tempfile
import traceback
from pathlib import Path

from ..errors import CFLDError, MissingDependencyError, describe_unexpected
from .inputs import MAX_FILE_SIZE

HOST = "127.0.0.1"


def import_gradio():
    """Gradio, with its analytics off; a missing ``app`` extra is one sentence saying what to install."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:
        raise MissingDependencyError(f"the web app needs Gradio: pip install 'cfld[app]' ({err})") from None
    return gr


def guarded(action):
    """``action`` as a Gradio event handler: our input errors, and any other failure, are one sentence in the
    page instead of a generic 'Error' (a bug's traceback goes to the server's log), and the sampling progress
    bar shows (Gradio passes a Progress to a function whose signature asks for one)."""
    gr = import_gradio()

    def run(*args):
        args = [a for a in args if not isinstance(a, gr.Progress)]
        try:
            return action(*args)
        except CFLDError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - one sentence in the page; a bug's traceback in the server log
            message, code = describe_unexpected(err, "the server's log shows the traceback")
            if code == 1:
                traceback.print_exc()
            raise gr.Error(message, print_exception=False) from None

    functools.update_wrapper(run, action)
    params = list(inspect.signature(action).parameters.values())
    progress = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 default=gr.Progress(track_tqdm=True))
    run.__signature__ = inspect.Signature([*params, progress])
    return run


def launch(blocks, port: int = 7860, open_browser: bool = False, block: bool = True):
    """Serve on 127.0.0.1:port with the upload limit, system fonts and no network calls of Gradio's own."""
    gr = import_gradio()
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    return blocks.launch(server_name=HOST, server_port=port, inbrowser=open_browser, share=False,
                         max_file_size=MAX_FILE_SIZE, theme=theme, ssr_mode=False, footer_links=[],
                         prevent_thread_lock=not block, show_error=True, quiet=False, mcp_server=False)


def work_folder() -> Path:
    """A new temporary folder for what the app writes (animations; Gradio copies what it shows), removed with
    everything in it when the server exits."""
    folder = Path(tempfile.mkdtemp(prefix="cfld-app-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
