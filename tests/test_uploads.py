"""Huge pictures and decompression bombs never reach a decoder: the one image reader checks the width and height a
file's header declares before decoding anything, and every picture above the limit gets one sentence, in the
command line and in the web app, whatever its size (Pillow's own bomb warning and error included). The app takes
uploads as plain files (Gradio decodes nothing), so repeated refused uploads cost a header read each: no time,
no memory, no traceback in the server's log.

The bombs are made on the fly: a PNG's IHDR chunk declares the size, and Pillow opens a file lazily from that
and the start of an IDAT chunk, so one row of compressed zeros (under 100 bytes) declares 50000x50000 pixels.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from cfld.cli import main
from cfld.errors import InputError
from cfld.images import MAX_PIXELS, image_size, load_image

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "women1.jpg"
ABOVE_THE_LIMIT = [(8100, 8100), (9500, 9500), (13000, 13000), (14000, 14000), (50000, 50000)]  # 65.6 MP: under
# Pillow's limit (89.5 MP); 90 and 169 MP: Pillow's warning; 196 MP and 2.5 GP: Pillow's error


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A 1-bit greyscale PNG whose header declares ``width`` x ``height`` and whose pixel data is one row of zeros."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (1 + (width + 7) // 8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """A 6000x6000 greyscale PNG (35 kB, 36 megapixels) and a 50000x50000 bomb, by file name."""
    folder = tmp_path_factory.mktemp("uploads")
    Image.new("L", (6000, 6000)).save(folder / "grey.png")
    return {"grey.png": (folder / "grey.png", "6000x6000"),
            "bomb.png": (png_declaring(folder / "bomb.png", 50000, 50000), "50000x50000")}


def rss_mb() -> float:
    psutil = pytest.importorskip("psutil")
    return psutil.Process().memory_info().rss / 2**20


@pytest.mark.parametrize("size", ABOVE_THE_LIMIT, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_size_above_the_limit_is_one_sentence_without_pillows_warning(tmp_path, size):
    path = png_declaring(tmp_path / "big.png", *size)
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError) as error:
            load_image(path)
        assert image_size(path, max_pixels=10**12) == size  # the header alone, whatever the size
    assert str(error.value) == f"{path}: is {size[0]}x{size[1]} pixels, more than the {MAX_PIXELS:,} we accept"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == limit  # Pillow's limit for everyone else is back


def test_the_command_line_refuses_a_bomb_in_one_sentence(tmp_path, capsys):
    from cfld.pose import gallery, write_pose_json

    bomb = png_declaring(tmp_path / "holiday.png", 13000, 13000)  # Pillow's warning band
    pose = write_pose_json(gallery()[gallery().names[0]], tmp_path / "pose.json")
    code = main(["transfer", "-s", str(bomb), "-p", str(pose), "-m", str(tmp_path),
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{bomb}: is 13000x13000 pixels, more than the 64,000,000 we accept" in err


def test_readers_on_many_threads_leave_pillows_limit_as_it_was(tmp_path):
    bomb = png_declaring(tmp_path / "bomb.png", 50000, 50000)
    limit, faults = Image.MAX_IMAGE_PIXELS, []

    def read():
        try:
            for _ in range(20):
                assert load_image(PHOTO).size == (176, 256)
                with pytest.raises(InputError, match="is 50000x50000 pixels"):
                    load_image(bomb)
        except BaseException as fault:  # noqa: BLE001 - reported by the main thread
            faults.append(fault)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not faults and Image.MAX_IMAGE_PIXELS == limit


# -- the web app -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(reference_pipeline):
    """The app's Blocks served in this process on 127.0.0.1 (the route a browser's upload takes), and a client."""
    pytest.importorskip("gradio", reason="the web app needs the 'app' extra")
    client_module = pytest.importorskip("gradio_client")
    from cfld import app as web

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    blocks = web.build_app(reference_pipeline, default_steps=1)
    web.launch(blocks, port=port, block=False)
    try:
        yield blocks, client_module.Client(f"http://127.0.0.1:{port}/", verbose=False), client_module.handle_file
    finally:
        blocks.close()


def test_no_event_takes_an_image_component_as_input(served):
    import gradio as gr

    blocks = served[0]
    inputs = [block for fn in blocks.fns.values() for block in fn.inputs]
    assert inputs and not [block for block in inputs if isinstance(block, gr.Image)]  # gr.Image decodes with PIL
    photos = [block for block in inputs if isinstance(block, gr.File) and block.file_types == ["image"]]
    assert {block.elem_id for block in photos} >= {"source", "pose-photo", "reference", "mask", "look", "photo-a",
                                                   "photo-b", "anim-source"}


def test_refused_uploads_in_the_app_cost_no_time_and_no_memory(served, uploads):
    from cfld import app as web

    app = served[0].cfld_app
    app.preview(str(PHOTO), "person photo")  # warm
    before = rss_mb()
    for name, (path, size) in uploads.items():
        sentence = f"person photo ({name}): is {size} pixels, more than the 25,000,000 we accept"
        for call in (lambda path=path: app.repose(str(path), web.POSE_MODES[0], 0, None, None, 1, 2.0, 2.0, 0),
                     lambda path=path: app.preview(str(path), "person photo")) * 5:
            start = time.perf_counter()
            with pytest.raises(InputError) as error:
                call()
            assert time.perf_counter() - start < 0.1
            assert str(error.value) == sentence
        with pytest.raises(InputError, match=rf"^frame \({name}\): is {size} pixels, more than the 25,000,000"):
            app.animate(str(PHOTO), [str(path)], 4, 1, 0)
    assert rss_mb() - before < 30


def test_refused_uploads_through_gradio_are_one_sentence(served, uploads, capfd):
    from gradio_client.exceptions import AppError

    from cfld import app as web

    _, client, handle_file = served

    def repose(path):
        return client.predict(handle_file(str(path)), web.POSE_MODES[0], None, None, 1, 2, 2, 0, False, False, False,
                              api_name="/repose")

    preview = client.predict(handle_file(str(PHOTO)), api_name="/preview_source")  # a photo's preview comes back
    with Image.open(preview) as shown:
        assert shown.size == (176, 256)
    with pytest.raises(AppError):
        repose(uploads["grey.png"][0])  # warm: the client's and the queue's first request
    before = rss_mb()
    for name, (path, size) in uploads.items():
        sentence = f"person photo ({name}): is {size} pixels, more than the 25,000,000 we accept"
        for api_name in ["/repose"] * 5 + ["/preview_source"]:
            start = time.perf_counter()
            with pytest.raises(AppError) as error:
                if api_name == "/repose":
                    repose(path)
                else:
                    client.predict(handle_file(str(path)), api_name=api_name)
            assert time.perf_counter() - start < 1.0  # Gradio's round trip; decoding the grey PNG took 1.1-1.9 s
            assert str(error.value) == sentence  # no library message, no server path
    assert rss_mb() - before < 30  # the server is this process
    log = "".join(capfd.readouterr())
    assert "Traceback" not in log and "DecompressionBomb" not in log
