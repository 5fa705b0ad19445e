"""CFLDPipeline is a diffusers DiffusionPipeline: diffusers' folder layout, variants and dtypes, the Hub cache offline,
offload, callbacks, output types and progress bars; every folder that loaded before still loads, with the same
outputs, bit for bit; Python and the command line frame a photo the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfld.errors import InputError
from cfld.pipeline import CFLDPipeline, CFLDPipelineOutput
from cfld.pose import gallery, write_pose_json
from conftest import run

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
PHOTO, PHOTO2 = DATA / "women1.jpg", DATA / "women2.jpg"
REFERENCE, MASK = DATA / "deepfashion_ref_4.png", DATA / "deepfashion_ref_4_mask_upper.png"
BEFORE = DATA / "pipeline_before_diffusers.safetensors"  # the outputs of cfld before this change (commit ca9cd32)


def _poses(n=2):
    table = gallery()
    return [table[name] for name in table.names[:n]]


def _kwargs(seed=7, **more):
    return dict(num_inference_steps=3, generator=torch.Generator().manual_seed(seed), output_type="pt",
                return_latents=True, progress=False, output_size=None, frame=False, **more)


def _latents(pipe, **more):
    return pipe(PHOTO, _poses(), **_kwargs(**more)).latents


def write_old_layout(pipe, folder: Path) -> Path:
    """A folder as cfld's save_pretrained wrote it before it became a diffusers pipeline (the cfld-0.1 layout):
    model_index.json with our scheduler name, cfld/ (our checkpoint), vae/, scheduler/."""
    from cfld.checkpoint import save_checkpoint

    save_checkpoint(folder / "cfld", pipe.model, pipe.unet)
    pipe.vae.save_pretrained(folder / "vae", safe_serialization=True)
    pipe.scheduler.save_pretrained(folder / "scheduler")
    index = {"_class_name": "CFLDPipeline", "_cfld_version": "0.1.0.dev0", "guidance_type": pipe.guidance_type,
             "scheduler": "ddpm"}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


@pytest.fixture(scope="module")
def old_model_dir(tmp_path_factory, reference_pipeline) -> Path:
    return write_old_layout(reference_pipeline, tmp_path_factory.mktemp("old") / "cfld-0.1")


# -- what it is and what it writes --------------------------------------------------------------------------------


def test_a_diffusers_pipeline_in_diffusers_layout(reference_pipeline, tiny_model_dir):
    from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel

    from cfld import CFLDModel

    pipe = reference_pipeline
    assert isinstance(pipe, DiffusionPipeline) and pipe.model_cpu_offload_seq == "model->unet->vae"
    assert set(pipe.components) == {"model", "unet", "vae", "scheduler"}
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["model"] == ["cfld", "CFLDModel"] and index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    assert index["_class_name"] == "CFLDPipeline" and index["guidance_type"] == "uc_down_full"
    for part in ("model", "unet", "vae"):
        assert sorted(p.name for p in (tiny_model_dir / part).iterdir()) == [
            "config.json", "diffusion_pytorch_model.safetensors"]
    # each component is what diffusers (or CFLDModel, a diffusers model) loads on its own; the UNet is a plain one
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir / "unet")
    assert unet.config.block_out_channels == pipe.unet.config.block_out_channels
    assert torch.equal(unet.state_dict()["conv_in.weight"], pipe.unet.state_dict()["conv_in.weight"])
    model = CFLDModel.from_pretrained(tiny_model_dir / "model")
    assert model.config == pipe.model.config and model.config.hga_layers == pipe.model.config.hga_layers
    assert AutoencoderKL.from_pretrained(tiny_model_dir / "vae").config.latent_channels == 4
    card = (tiny_model_dir / "README.md").read_text()
    assert "library_name: diffusers" in card and "`CFLDPipeline`" in card and "license:" in card
    assert "converted from the original CFLD checkpoints" in card  # how it was made


def recorded(found: torch.Tensor, expected: torch.Tensor) -> bool:
    """``found`` is the recorded ``expected`` up to the rounding of another CPU's float32 kernels: on an AVX-512 Xeon
    the latents differ from the recording machine's by at most 6e-7 of their largest value and 8-bit pictures by
    one level, where any change to the arithmetic moves them by orders of magnitude more. Equal on the recording
    machine."""
    if found.shape != expected.shape:
        return False
    difference = float((found.double() - expected.double()).abs().max())
    if expected.dtype == torch.uint8:
        return difference <= 1
    return difference <= 1e-5 * max(1.0, float(expected.abs().max()))


def test_outputs_are_those_of_before(reference_pipeline):
    """The sampler, editing and the bundled demo model (re-saved in diffusers' layout) give what cfld gave before the
    pipeline became a diffusers pipeline (recorded in tests/data by that version): bit for bit on the CPU that
    recorded them, within float32 rounding on another (:func:`recorded`)."""
    from safetensors.torch import load_file

    from cfld import CFLDEditPipeline

    before, pipe = load_file(str(BEFORE)), reference_pipeline
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    kw = _kwargs()
    del kw["generator"]
    poses = _poses()
    assert recorded(pipe([PHOTO, PHOTO2], poses, generator=g(7), **kw).latents, before["ref_ddpm_lat"])
    assert recorded(pipe(PHOTO, poses, generator=g(7), scheduler="ddim", guidance_pose=1.0, guidance_appearance=3.0,
                            **kw).latents, before["ref_ddim_lat"])
    assert recorded(pipe(PHOTO, poses, generator=g(3), fast=True, **{**kw, "num_inference_steps": None}).latents,
                       before["ref_fast_lat"])
    assert recorded(pipe(PHOTO, poses, generator=g(3), guidance_interval=(0.0, 0.5), batch_size=1,
                            **{**kw, "num_inference_steps": 4}).latents, before["ref_interval_lat"])
    pil = pipe(PHOTO, poses[:1], generator=g(1), **{**kw, "output_type": "pil", "output_size": (256, 176)}).images[0]
    assert recorded(torch.from_numpy(np.asarray(pil).copy()), before["ref_pil"])
    editor = CFLDEditPipeline.from_pipe(pipe)
    assert recorded(editor.style_transfer(REFERENCE, poses[0], [PHOTO, PHOTO2], MASK, generator=g(5), **kw).latents,
                       before["edit_style_lat"])
    assert recorded(editor.interpolate(PHOTO, PHOTO2, poses[0], [0.0, 0.5, 1.0], generator=g(6), **kw).latents,
                       before["edit_interp_lat"])
    demo = CFLDPipeline.from_pretrained("demo")
    out = demo(PHOTO, poses, generator=g(0), **{**kw, "num_inference_steps": 5})
    assert recorded(out.latents, before["demo_lat"]) and recorded(out.images, before["demo_img"])


def test_every_older_folder_loads_with_the_same_outputs(reference_pipeline, old_model_dir, tiny_model_dir, ref_dir,
                                                        tmp_path):
    """The cfld-0.1 layout, a bare checkpoint (old `cfld convert`) with --base, the released original checkpoints,
    and what save_pretrained writes now: the same latents, bit for bit; re-saving an old folder writes the new
    layout."""
    from cfld.checkpoint import save_checkpoint

    expected = _latents(reference_pipeline)
    old = CFLDPipeline.from_pretrained(old_model_dir)
    assert torch.equal(_latents(old), expected) and old.provenance.startswith("re-saved from a cfld 0.1")
    bare = save_checkpoint(tmp_path / "bare", reference_pipeline.model, reference_pipeline.unet)
    assert torch.equal(_latents(CFLDPipeline.from_pretrained(bare, base=ref_dir)), expected)
    assert torch.equal(_latents(CFLDPipeline.from_pretrained(tiny_model_dir)), expected)
    resaved = old.save_pretrained(tmp_path / "resaved")
    assert json.loads((resaved / "model_index.json").read_text())["model"] == ["cfld", "CFLDModel"]
    again = CFLDPipeline.from_pretrained(resaved)
    assert torch.equal(_latents(again), expected) and again.provenance == old.provenance  # kept through the card
    with pytest.raises(InputError, match="variant does not apply"):
        CFLDPipeline.from_pretrained(old_model_dir, variant="fp16")


def test_variant_and_torch_dtype(tiny_model_dir, tmp_path):
    pipe = CFLDPipeline.from_pretrained(tiny_model_dir)
    assert pipe.to("cpu", torch.float16) is pipe and pipe.unet.dtype == pipe.model.dtype == torch.float16
    pipe.save_pretrained(tmp_path / "half", variant="fp16")
    assert (tmp_path / "half" / "model" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (tmp_path / "half" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    half = CFLDPipeline.from_pretrained(tmp_path / "half", variant="fp16", torch_dtype=torch.float16)
    assert half.model.dtype == half.unet.dtype == half.vae.dtype == torch.float16
    full = CFLDPipeline.from_pretrained(tiny_model_dir)
    w = "source_encoder.swin.patch_embed.proj.weight"
    assert torch.equal(half.model.state_dict()[w], full.model.state_dict()[w].half())
    bf16 = CFLDPipeline.from_pretrained(tiny_model_dir, torch_dtype=torch.bfloat16)
    assert bf16.unet.dtype == torch.bfloat16 and torch.isfinite(_latents(bf16)).all()
    with pytest.raises(InputError, match="safetensors only"):
        pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)


# -- the Hugging Face Hub, offline ----------------------------------------------------------------------------------


def _hub_cache(root: Path, repo: str, folder: Path) -> Path:
    """``folder`` as huggingface_hub's cache holds a downloaded snapshot of ``repo``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return root


def test_hub_ids_load_offline_from_the_cache(reference_pipeline, tiny_model_dir, old_model_dir, tmp_path, monkeypatch,
                                             capsys):
    """With HF_HUB_OFFLINE=1 (the suite's), a Hub id is read from huggingface_hub's cache: diffusers' layout through
    diffusers, an older layout through a snapshot; `-m org/name` in a command; an id not in the cache is one
    sentence."""
    import os

    from huggingface_hub import constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    cache = _hub_cache(tmp_path / "hub", "cfld-org/cfld-tiny", tiny_model_dir)
    _hub_cache(cache, "cfld-org/cfld-old", old_model_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    expected = _latents(reference_pipeline)
    pipe = CFLDPipeline.from_pretrained("cfld-org/cfld-tiny")
    assert pipe.name_or_path == "cfld-org/cfld-tiny" and torch.equal(_latents(pipe), expected)
    assert torch.equal(_latents(CFLDPipeline.from_pretrained("cfld-org/cfld-old")), expected)
    assert torch.equal(_latents(CFLDPipeline.from_pretrained("cfld-org/cfld-tiny", local_files_only=True)), expected)
    pose = write_pose_json(_poses(1)[0], tmp_path / "pose.json")
    code, out, err = run(capsys, "transfer", "-s", PHOTO, "-p", pose, "-m", "cfld-org/cfld-tiny", "--steps", "1",
                         "--size", "64x44", "-o", tmp_path / "out", "--no-frame")
    assert code == 0 and (tmp_path / "out" / "women1_to_pose.png").is_file(), err
    with pytest.raises(InputError, match="cfld-org/nothing: "):
        CFLDPipeline.from_pretrained("cfld-org/nothing")


def test_push_to_hub_uploads_the_layout_and_our_card(reference_pipeline, monkeypatch):
    """diffusers' push_to_hub (the network calls stubbed): the folder it uploads is diffusers' layout, and the blank
    card diffusers writes for a repository without one becomes ours."""
    from diffusers.utils import hub_utils
    from huggingface_hub import ModelCard

    uploaded = {}

    class Repo:
        repo_id = "someone/cfld-tiny"

    monkeypatch.setattr(hub_utils, "create_repo", lambda *a, **k: Repo())
    monkeypatch.setattr(hub_utils, "load_or_create_model_card", lambda *a, **k: ModelCard(
        "---\nlibrary_name: diffusers\n---\nThis model card has been automatically generated.\n"))
    monkeypatch.setattr(hub_utils, "upload_folder", lambda repo_id, folder_path, **k: uploaded.update(
        repo=repo_id,
        files=sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()),
        card=(Path(folder_path) / "README.md").read_text()))
    reference_pipeline.push_to_hub("someone/cfld-tiny")
    assert uploaded["repo"] == "someone/cfld-tiny"
    assert "model_index.json" in uploaded["files"] and "model/diffusion_pytorch_model.safetensors" in uploaded["files"]
    assert "CFLDPipeline.from_pretrained(\"someone/cfld-tiny\"" in uploaded["card"]


# -- sampling in diffusers' conventions -----------------------------------------------------------------------------


def test_output_types_return_dict_and_generators(reference_pipeline):
    pipe = reference_pipeline
    kw = dict(num_inference_steps=2, progress=False, frame=False, output_size=(64, 44))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    pt = pipe(PHOTO, _poses(), generator=g(1), output_type="pt", **kw)
    assert isinstance(pt, CFLDPipelineOutput) and pt.images.shape == (2, 3, 64, 44)
    arrays = pipe(PHOTO, _poses(), generator=g(1), output_type="np", **kw).images
    assert arrays.shape == (2, 64, 44, 3) and arrays.dtype == np.float32
    assert np.array_equal(arrays, pt.images.permute(0, 2, 3, 1).numpy())
    latent = pipe(PHOTO, _poses(), generator=g(1), output_type="latent", **kw).images
    assert latent.shape == (2, 4, *pipe.latent_size)
    images, = pipe(PHOTO, _poses(), generator=g(1), return_dict=False, **kw)
    assert len(images) == 2 and all(isinstance(i, Image.Image) for i in images)
    # a list of generators: one per image, each image as if drawn alone with its own
    both = pipe(PHOTO, _poses(), generator=[g(4), g(5)], output_type="latent", **kw).images
    alone = pipe(PHOTO, _poses()[1:], generator=g(5), output_type="latent", **kw).images
    assert (both[1:] - alone).abs().max().item() <= 1e-5
    with pytest.raises(InputError, match="one per image"):
        pipe(PHOTO, _poses(), generator=[g(4)], **kw)
    with pytest.raises(InputError, match="output_type"):
        pipe(PHOTO, _poses(), output_type="jpeg", **kw)


def test_step_end_callbacks(reference_pipeline):
    from diffusers.callbacks import PipelineCallback

    pipe, seen = reference_pipeline, []

    def watch(p, step, timestep, tensors):
        seen.append((step, int(timestep), tuple(tensors)))
        return {"latents": tensors["latents"] * 0 if step == 2 else tensors["latents"]}

    out = pipe(PHOTO, _poses(1), callback_on_step_end=watch, callback_on_step_end_tensor_inputs=["latents"],
               **_kwargs())
    assert [s for s, _, _ in seen] == [0, 1, 2] and seen[0][2] == ("latents",)
    assert [t for _, t, _ in seen] == pipe.scheduler.timesteps.tolist()
    assert torch.equal(out.latents, torch.zeros_like(out.latents))  # what the callback returned is used

    class Halve(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, p, step, timestep, tensors):
            return {"latents": tensors["latents"] / 2}

    halved = pipe(PHOTO, _poses(1), callback_on_step_end=Halve(cutoff_step_ratio=1.0), **_kwargs())
    assert halved.latents.abs().max() < _latents(pipe)[:1].abs().max()
    with pytest.raises(InputError, match="callback_on_step_end_tensor_inputs"):
        pipe(PHOTO, _poses(1), callback_on_step_end=watch, callback_on_step_end_tensor_inputs=["prompt"], **_kwargs())


def test_progress_bar_follows_set_progress_bar_config(tiny_model_dir, capsys):
    pipe = CFLDPipeline.from_pretrained(tiny_model_dir)
    capsys.readouterr()
    args = dict(num_inference_steps=2, output_type="latent", frame=False)
    pipe(PHOTO, _poses(1), **args)
    assert "2/2" in capsys.readouterr().err
    pipe.set_progress_bar_config(disable=True)
    pipe(PHOTO, _poses(1), **args)
    assert "2/2" not in capsys.readouterr().err


def test_model_cpu_offload_gives_the_same_images(tiny_model_dir, reference_pipeline):
    """diffusers' model offload (hooks that move each component to the execution device when it runs; here the CPU
    itself, so only the hooks are exercised) samples the same latents."""
    pipe = CFLDPipeline.from_pretrained(tiny_model_dir)
    pipe.enable_model_cpu_offload(device="cpu")
    assert all(hasattr(m, "_hf_hook") for m in (pipe.model, pipe.unet, pipe.vae))
    assert torch.equal(_latents(pipe), _latents(reference_pipeline))


def test_the_condition_model_is_used_only_through_its_forward(reference_pipeline):
    """Offload hooks wrap each model's forward: every use of a CFLDModel part by the sampler happens inside
    CFLDModel.forward (sequential offload keeps the weights elsewhere until then)."""
    model, inside, outside = reference_pipeline.model, [], []
    active = []
    hooks = [model.register_forward_pre_hook(lambda m, a, k: active.append(1), with_kwargs=True),
             model.register_forward_hook(lambda m, a, k, o: active.pop() and None, with_kwargs=True)]
    for name, child in model.named_children():
        hooks.append(child.register_forward_pre_hook(
            lambda m, a, name=name: (inside if active else outside).append(name)))
    try:
        _latents(reference_pipeline)
    finally:
        for hook in hooks:
            hook.remove()
    assert set(inside) == {"source_encoder", "prompt_decoder", "appearance_encoder", "pose_adapter"} and not outside


def test_what_would_drop_the_hga_bias_is_refused(tiny_model_dir):
    from diffusers.models.attention_processor import AttnProcessor2_0

    from cfld import CFLDModel

    pipe = CFLDPipeline.from_pretrained(tiny_model_dir)
    with pytest.raises(InputError, match="xformers: would replace the HGA attention processors"):
        pipe.enable_xformers_memory_efficient_attention()
    with pytest.raises(InputError, match="attention slicing: would replace"):
        pipe.enable_attention_slicing()
    pipe.disable_attention_slicing()  # nothing to undo: harmless
    pipe.disable_xformers_memory_efficient_attention()
    expected = _latents(pipe)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    with pytest.raises(InputError, match="pipe.unet: has attention processors other than CFLD's HGA ones"):
        _latents(pipe)
    CFLDModel.prepare_unet(pipe.unet)
    assert torch.equal(_latents(pipe), expected)


def test_from_pipe_and_components(reference_pipeline):
    from cfld import CFLDEditPipeline

    editor = CFLDEditPipeline.from_pipe(reference_pipeline)
    assert all(getattr(editor, k) is v for k, v in reference_pipeline.components.items())
    assert editor.guidance_type == reference_pipeline.guidance_type
    assert torch.equal(_latents(editor), _latents(reference_pipeline))


# -- one behaviour for Python and the command line -----------------------------------------------------------------


def _landscape(path: Path) -> Path:
    """A DeepFashion photo pasted off-centre, at half its height, into a wide 450x800 photo."""
    picture = Image.open(PHOTO).convert("RGB")
    canvas = Image.new("RGB", (800, 450), (200, 190, 180))
    canvas.paste(picture.resize((155, 225), Image.BICUBIC), (520, 100))
    canvas.save(path)
    return path


def test_a_landscape_photo_is_framed_the_same_in_python_and_by_cfld_transfer(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    wide = _landscape(tmp_path / "wide.png")
    pose = write_pose_json(_poses(1)[0], tmp_path / "front.json")
    pipe = CFLDPipeline.from_pretrained("demo")
    out = pipe(wide, pose, num_inference_steps=2, output_size=(64, 44), generator=torch.Generator().manual_seed(0),
               progress=False)
    framed = out.framed[0]
    assert framed.cropped and framed.photo_size == (450, 800) and framed.image.size == (44, 64)
    code, stdout, err = run(capsys, "transfer", "-s", wide, "-p", pose, "-m", "demo", "--steps", "2", "--size", "64x44",
                            "-o", tmp_path / "out", "--save-framed")
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "wide_framed.json").read_text())
    assert record["crop"] == framed.crop.to_json()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "wide_framed.png")), np.asarray(framed.image))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "wide_to_front.png")), np.asarray(out.images[0]))
    # frame=False stretches the whole photo instead: another picture, another image
    plain = pipe(wide, pose, num_inference_steps=2, output_size=(64, 44), generator=torch.Generator().manual_seed(0),
                 progress=False, frame=False)
    assert plain.framed is None and not np.array_equal(np.asarray(plain.images[0]), np.asarray(out.images[0]))


def test_python_style_transfer_frames_the_reference_with_its_mask_and_pose(reference_pipeline, tmp_path):
    """style_transfer(frame=True) frames a wide reference, cuts its mask with the crop and moves a pose given in the
    wide photo's frame into it: what `cfld edit style-transfer` hands the pipeline after framing."""
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    from cfld import CFLDEditPipeline
    from cfld.framing import Framer
    from cfld.images import BLACK, load_image
    from cfld.pose import PoseDetector

    def wide(photo, mode, fill):
        canvas = Image.new(mode, (800, 450), fill)
        canvas.paste(Image.open(photo).convert(mode), (400, 100))
        return canvas

    reference, mask = tmp_path / "wide.png", tmp_path / "wide_mask.png"
    wide(REFERENCE, "RGB", (200, 190, 180)).save(reference)
    wide(MASK, "L", 0).save(mask)
    with PoseDetector() as detector:
        pose = detector(reference)  # in the wide photo's frame
    editor = CFLDEditPipeline.from_pipe(reference_pipeline)
    kw = {**_kwargs(2), "output_size": (128, 88)}
    del kw["frame"]
    python = editor.style_transfer(reference, pose, PHOTO2, mask, **kw).latents
    with Framer((128, 88)) as framer:
        framed = framer(reference, "wide.png")
    region = framed.apply_crop(load_image(mask, background=BLACK).convert("L"))
    by_hand = editor.style_transfer(framed.image, framed.move_pose(pose), PHOTO2, region, **{**kw, "frame": False,
                                    "generator": torch.Generator().manual_seed(2)}).latents
    assert torch.equal(python, by_hand)


def test_commands_take_old_and_new_folders(old_model_dir, tiny_model_dir, tmp_path, capsys):
    """transfer, animate and both edit commands with -m on a folder of the older layout and one of diffusers' layout:
    the same images from both."""
    pose = write_pose_json(_poses(1)[0], tmp_path / "pose.json")
    poses = tmp_path / "poses"
    poses.mkdir()
    for i, p in enumerate(_poses(2)):
        write_pose_json(p, poses / f"p{i}.json")
    common = ["--steps", "1", "--size", "64x44", "--no-frame"]
    outputs = {}
    for label, model in (("old", old_model_dir), ("new", tiny_model_dir)):
        out = tmp_path / label
        for args in (["transfer", "-s", PHOTO, "-p", pose, "-o", out / "transfer"],
                     ["animate", "-s", PHOTO, "-p", poses, "-o", out / "animate", "--no-mp4"],
                     ["edit", "interpolate", "-a", PHOTO, "-b", PHOTO2, "-p", pose, "-n", "2", "-o", out / "strip.png"],
                     ["edit", "style-transfer", "-r", REFERENCE, "--reference-pose", pose, "--mask", MASK, "-s", PHOTO2,
                      "-o", out / "edited.png"]):
            code, _, err = run(capsys, *args, "-m", model, *common)
            assert code == 0, (label, args[0], err)
        outputs[label] = {p.relative_to(out): np.asarray(Image.open(p)) for p in out.rglob("*.png")}
    assert len(outputs["new"]) == 5 and outputs["old"].keys() == outputs["new"].keys()  # 2 animation frames
    assert all(np.array_equal(outputs["old"][k], outputs["new"][k]) for k in outputs["new"])
