"""Fuzz: malformed, unusual and hostile inputs for every command, run in-process through ``cfld.cli.main``.

Each case is one command line with one bad input (image, pose, option, model folder, checkpoint, config,
dataset, metric weights) among valid ones. Every case must end with a non-zero exit status and exactly one
line on stderr, ``error: ...``, naming the file or option and the fault; no traceback (the suite runs with
CFLD_DEBUG=1, so an unexpected exception fails the case with its traceback), no "bug in cfld" line; the
output folder and every input exactly as they were.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

from cfld.pose import gallery, write_pose_json
from conftest import TINY_TRAINING, run

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "deepfashion_ref_4.png"
MASK = DATA / "deepfashion_ref_4_mask_upper.png"
READ_ONLY = Path("/sys/cfld-fuzz-output")  # a place no one may write, root included


# -- the inputs ---------------------------------------------------------------------------------------------------


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


class _RunsCode:
    """Unpickling this would call os.system: weights_only loading must refuse it without running it."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _pose_dict() -> dict:
    from cfld.pose import pose_to_json

    table = gallery()
    return pose_to_json(table[table.names[0]])


def bad_images() -> dict[str, bytes | None]:
    """name -> bytes (None: make a folder of that name)."""
    photo = Image.open(PHOTO).convert("RGB")
    rng = random.Random(0)
    return {
        "empty.png": b"",
        "garbage.png": rng.randbytes(3000),
        "text.png": b"this is not a picture\n",
        "truncated.png": PHOTO.read_bytes()[:300],
        "truncated.jpg": _jpeg(photo)[:400],
        "tiny.png": _png(Image.new("RGB", (4, 4))),
        "bomb.png": _png(Image.new("1", (20000, 20000))),  # 400 megapixels in 50 kB
        "float.tif": (lambda b: (Image.new("F", (32, 32)).save(b, format="TIFF"), b.getvalue())[1])(io.BytesIO()),
        "json.png": json.dumps(_pose_dict()).encode(),
        "folder.png": None,
    }


def bad_poses() -> dict[str, str | bytes]:
    good = _pose_dict()
    joints17 = dict(good, joints=good["joints"][:17])
    unknown = dict(good, joints=[dict(good["joints"][0], name="tail")] + good["joints"][1:])
    negative_frame = dict(good, frame=[-256, 176])
    text_frame = dict(good, frame=["tall", "wide"])
    negative_conf = dict(good,
                         joints=[dict(good["joints"][1], confidence=-1)] + good["joints"][:1] + good["joints"][2:])
    first = next(i for i, j in enumerate(good["joints"]) if j["x"] is not None)
    marked = dict(good, joints=[dict(j, x="@X@") if i == first else j for i, j in enumerate(good["joints"])])
    text_x = json.dumps(marked).replace('"@X@"', '"88"')
    overflow = json.dumps(marked).replace('"@X@"', "1e999")
    return {
        "empty.json": "",
        "unclosed.json": '{"frame": [256, 176], "joints": [',
        "array.json": "[1, 2, 3]",
        "nested.json": "[" * 200_000 + "]" * 200_000,
        "nan.json": json.dumps(marked).replace('"@X@"', "NaN"),
        "overflow.json": overflow,
        "text_x.json": text_x,
        "joints17.json": json.dumps(joints17),
        "unknown_joint.json": json.dumps(unknown),
        "negative_frame.json": json.dumps(negative_frame),
        "text_frame.json": json.dumps(text_frame),
        "negative_conf.json": json.dumps(negative_conf),
        "nobody.json": json.dumps(dict(good, joints=[dict(j, x=None, y=None, confidence=0) for j in good["joints"]])),
        "openpose_short.json": json.dumps({"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.9] * 5}]}),
        "openpose_nobody.json": json.dumps({"people": []}),
        "binary.json": b"\xff\xfe\x00\x81garbage",
        "garbage.csv": "name:keypoints_y:keypoints_x\nthis is no annotation row\n",
        "short.csv": ("name:keypoints_y:keypoints_x\na.jpg:[" + ",".join(["10"] * 17) + "]:[" + ",".join(["10"] * 17)
                      + "]\n"),
        "far.csv": ("name:keypoints_y:keypoints_x\na.jpg:[" + ",".join(["9000"] * 18) + "]:[" + ",".join(["10"] * 18)
                    + "]\n"),
    }


TRAIN_BASE = TINY_TRAINING

# training configs: name -> (YAML text or a change to TRAIN_BASE, fragment the error must contain)
BAD_TRAIN_CONFIGS: dict[str, tuple[object, str]] = {
    "syntax": ("batch_size: [4\nlr: 1\n", "not valid YAML"),
    "tab": ("batch_size:\t4\n\tlr: 1\n", "not valid YAML"),
    "billion_laughs": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n",
                       "uses YAML anchors/aliases"),
    "deep": ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    "python_tag": ("data: !!python/object/apply:os.system ['touch PWNED']\n", "not valid YAML"),
    "list": ("- 1\n- 2\n", "not a mapping"),
    "scalar": ("42\n", "not a mapping"),
    "unknown_option": ({"learning_rate": 1}, "unknown training options learning_rate"),
    "date": ({"data": {"kind": "synthetic", "length": "DATE"}}, "length must be a whole number from 1 to 100,000,000 "
                                                                "(pairs), got 2024-01-01"),  # a date is read as text
    "batch_text": ({"batch_size": "4"}, "batch_size must be a whole number"),
    "batch_float": ({"batch_size": 2.5}, "batch_size must be a whole number"),
    "epochs_negative": ({"epochs": -1}, "epochs must be a whole number"),
    "max_steps_text": ({"max_steps": "ten"}, "max_steps must be a whole number"),
    "lr_text": ({"lr": "fast"}, "lr must be a number"),
    "lr_nan": ({"lr": float("nan")}, "lr must be a finite number"),
    "lr_zero": ({"lr": 0}, "lr must be a finite number above 0"),
    "betas_short": ({"adam_betas": [0.9]}, "adam_betas must be a list of 2"),
    "betas_text": ({"adam_betas": "0.9,0.999"}, "adam_betas must be a list of 2"),
    "betas_one": ({"adam_betas": [0.9, 1.5]}, "adam_betas"),
    "eps_negative": ({"adam_eps": -1e-8}, "adam_eps must be a finite number above 0"),
    "decay_text": ({"decay_epochs": "50"}, "decay_epochs must be a list of whole numbers"),
    "decay_rate_inf": ({"decay_rate": float("inf")}, "decay_rate must be a finite number"),
    "precision": ({"mixed_precision": "fp8"}, "mixed_precision must be one of no, fp16, bf16"),
    "trainable": ({"trainable": "everything"}, "trainable must be one of paper, unet"),
    "seed_huge": ({"seed": 2**40}, "seed must be a whole number"),
    "seed_negative": ({"seed": -1}, "seed must be a whole number"),
    "workers_negative": ({"num_workers": -1}, "num_workers must be a whole number"),
    "threads_zero": ({"torch_threads": 0}, "torch_threads must be a whole number"),
    "bool_text": ({"scale_lr": "yes"}, "scale_lr must be true or false"),
    "scheduler_name": ({"noise_scheduler": {"beta_schedule": "bogus"}}, "beta_schedule must be one of"),
    "scheduler_steps": ({"noise_scheduler": {"num_train_timesteps": "1000"}}, "num_train_timesteps must be"),
    "scheduler_betas": ({"noise_scheduler": {"beta_end": 5}}, "beta_end must be a number between 0 and 1"),
    "scheduler_scalar": ({"noise_scheduler": 5}, "noise_scheduler must be a mapping"),
    "model_preset": ({"model": {"preset": "huge"}}, "preset must be sd15 or tiny"),
    "model_text": ({"model": {"preset": "tiny", "prompt_dim": "32"}}, "prompt_dim must be a whole number"),
    "model_channels_text": ({"model": {"preset": "tiny", "unet": {"block_out_channels": "32,32,64,64"}}},
                            "block_out_channels must be a list"),
    "model_negative": ({"model": {"preset": "tiny", "num_queries": -4}}, "num_queries must be a whole number"),
    "model_huge": ({"model": {"preset": "tiny", "image_size": [64, 64], "prompt_dim": 16384, "prd_depth": 128,
                              "unet": {"cross_attention_dim": 16384}}}, "billion parameters"),
    "model_number": ({"model": 5}, "model must be sd15, tiny"),
    "model_heads": ({"model": {"preset": "tiny", "image_size": [64, 64], "prd_heads": 3}}, "does not describe a model"),
    "model_misfit": ({"model": {"preset": "tiny", "image_size": [64, 64], "pose_downscale": 2}}, "do not fit together"),
    "model_vae_misfit": ({"model": {"preset": "tiny", "image_size": [62, 62]}}, "not a multiple of the VAE"),
    "model_latent_misfit": ({"model": {"preset": "tiny", "image_size": [60, 60]}}, "do not fit together at 15x15"),
    "vae_text": ({"vae": {"train_steps": "x"}}, "train_steps must be a whole number"),
    "vae_channels_text": ({"vae": {"block_out_channels": "16,32"}}, "block_out_channels must be a list"),
    "vae_groups": ({"vae": {"block_out_channels": [10, 20], "norm_num_groups": 4}}, "divisible by norm_num_groups"),
    "vae_unknown": ({"vae": {"depth": 3}}, "unknown options depth"),
    "vae_deterministic_text": ({"vae": {"deterministic": "yes"}}, "deterministic must be true or false"),
    "vae_latents": ({"vae": {"latent_channels": 8}}, "latent_channels (8) must equal"),
    "vae_batch_over_dataset": ({"vae": {"train_steps": 2, "batch_size": 64, "block_out_channels": [8, 8, 8],
                                        "norm_num_groups": 4}}, "needs 32 pairs, but the dataset has 8"),
    "data_code": ({"data": {"kind": "subprocess:run", "args": "touch PWNED", "shell": True}}, "names Python code"),
    "data_eval": ({"data": {"kind": "builtins:eval", "source": "1"}}, "names Python code"),
    "data_module": ({"data": {"kind": "os.system"}}, "is not a known dataset"),
    "data_unknown_kind": ({"data": {"kind": "imagenet"}}, "is not a known dataset"),
    "data_kind_number": ({"data": {"kind": 5}}, "data must be a mapping with a 'kind'"),
    "data_scalar": ({"data": "synthetic"}, "data must be a mapping"),
    "data_option": ({"data": {"kind": "synthetic", "length": 8, "colour": "red"}},
                    "options colour that synthetic does not take"),
    "data_reserved": ({"data": {"kind": "synthetic", "length": 8, "image_size": [8, 8]}}, "sets image_size"),
    "data_length_text": ({"data": {"kind": "synthetic", "length": "many"}}, "length must be a whole number from 1"),
    "data_photo_size": ({"data": {"kind": "synthetic", "length": 8, "photo_size": 5}}, "synthetic dataset"),
    "data_poses_missing": ({"data": {"kind": "synthetic", "length": 8, "poses": "nowhere.csv"}}, "nowhere.csv"),
    "prepared_no_root": ({"data": {"kind": "prepared"}}, "needs a 'root'"),
    "prepared_missing": ({"data": {"kind": "prepared", "root": "no-such-folder"}}, "no-such-folder"),
    "batch_over_dataset": ({"batch_size": 64}, "fewer than one batch of 64"),
    "batch_indivisible": ({"gradient_accumulation_steps": 3}, "not divisible"),
    "fp16_on_cpu": ({"mixed_precision": "fp16"}, "fp16 needs a CUDA GPU"),
    "swin_missing": ({"swin": "no-such-swin.pth"}, "no-such-swin.pth"),
    "init_missing": ({"init_checkpoint": "no-such-checkpoint"}, "no-such-checkpoint"),
    "unet_missing": ({"unet": "no-such-folder/unet", "vae": "no-such-folder/unet", "trainable": "paper",
                      "model": "sd15"},
                     "no-such-folder/unet"),
    "sd15_small_vae": ({"model": "sd15", "trainable": "unet"}, "do not fit together at 128x128 latents"),
    "eval_select": ({"eval_every": 1, "select_by": "beauty"}, "select_by must be one of"),
    "eval_select_unlisted": ({"eval_every": 1, "eval_metrics": ["psnr"], "select_by": "ssim"},
                             "select_by ssim is not one of"),
    "eval_data_code": ({"eval_every": 1, "eval_data": {"kind": "subprocess:run", "args": "touch PWNED"}},
                       "names Python code"),
    "eval_data_missing": ({"eval_every": 1, "eval_data": {"kind": "prepared", "root": "no-such-folder"}},
                          "no-such-folder"),
    "eval_steps": ({"eval_every": 1, "eval_steps": 0}, "eval_steps must be a whole number"),
    "eval_guidance": ({"eval_every": 1, "eval_guidance_pose": float("nan")},
                      "eval_guidance_pose must be a finite number"),
    "eval_fid_reference": ({"eval_every": 1, "eval_metrics": ["fid"], "select_by": "fid", "eval_fid_reference": 5},
                           "eval_fid_reference must be a folder"),
}

# a training checkpoint's files: name -> (change, fragment)
BAD_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "model_truncated": ("truncate model.safetensors", "model.safetensors: cannot be read as safetensors"),
    "unet_missing": ("delete unet.safetensors", "unet.safetensors: is missing"),
    "optimizer_missing": ("delete optimizer.safetensors", "optimizer.safetensors: is missing"),
    "optimizer_garbage": ("garbage optimizer.safetensors", "optimizer.safetensors: cannot be read"),
    "rng_missing": ("delete rng-0.safetensors", "rng-0.safetensors: is missing"),
    "rng_wrong": ("wrong rng-0.safetensors", "rng-0.safetensors: is not a random-state file"),
    "state_garbage": ("garbage trainer_state.json", "trainer_state.json: is not valid JSON"),
    "state_step_text": ("state step=ten", "step must be a whole number"),
    "state_groups": ("state optimizer_param_groups=5", "optimizer_param_groups must be a list"),
    "state_processes": ("state num_processes=2", "was written by 2 processes"),
    "state_scheduler": ("state lr_scheduler=x", "lr_scheduler must be a mapping"),
    "config_other": ("config num_queries=5", "another configuration"),
    "model_nan": ("nan model.safetensors", "NaN or infinite"),
}


@dataclass
class Workspace:
    root: Path
    inputs: Path
    paths: dict[str, str] = field(default_factory=dict)

    def fill(self, arg: str) -> str:
        return arg.format(**self.paths)


def _write(path: Path, content: str | bytes | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _linked_copy(source: Path, dest: Path) -> Path:
    """A copy of a folder whose files are hard links (cheap); edit a file only after unlinking it."""
    shutil.copytree(source, dest, copy_function=os.link)
    return dest


def _replace(path: Path, content: str | bytes) -> None:
    path.unlink()
    _write(path, content)


def _model_variants(good: Path, base: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of a model folder: name -> (folder, fragment the error must contain)."""
    config = json.loads((good / "model" / "config.json").read_text())
    index = json.loads((good / "model_index.json").read_text())
    scheduler = json.loads((good / "scheduler" / "scheduler_config.json").read_text())
    weights_file = "model/diffusion_pytorch_model.safetensors"
    weights = load_file(str(good / weights_file))
    first = next(iter(weights))
    nan_weights = dict(weights, **{first: torch.full_like(weights[first], float("nan"))})
    extra = dict(weights, extra=torch.zeros(2))
    model_bytes = (good / weights_file).read_bytes()
    edits: dict[str, tuple[str, str | bytes | None, str]] = {
        "index_garbage": ("model_index.json", "{", "model_index.json: is not valid JSON"),
        "index_array": ("model_index.json", "[]", "model_index.json: is not a JSON object"),
        "index_deep": ("model_index.json", "[" * 100_000 + "]" * 100_000, "model_index.json: is nested too deeply"),
        "index_scheduler": ("model_index.json", json.dumps(dict(index, scheduler=["diffusers", "BogusScheduler"])),
                            "which is not a diffusers scheduler"),
        "index_scheduler_type": ("model_index.json", json.dumps(dict(index, scheduler=5)),
                                 "must name the scheduler component as [library, class]"),
        "index_model": ("model_index.json", json.dumps(dict(index, model=["transformers", "CLIPTextModel"])),
                        "a CFLD pipeline's is ['cfld', 'CFLDModel']"),
        "index_guidance": ("model_index.json", json.dumps(dict(index, guidance_type="everything")),
                           "guidance_type must be one of"),
        "schedule_text": ("scheduler/scheduler_config.json", json.dumps(dict(scheduler, num_train_timesteps="1000")),
                          "num_train_timesteps must be"),
        "schedule_kind": ("scheduler/scheduler_config.json", json.dumps(dict(scheduler, beta_schedule="cosine-ish")),
                          "beta_schedule must be one of"),
        "schedule_betas": ("scheduler/scheduler_config.json", json.dumps(dict(scheduler, beta_end=5)), "beta_end"),
        "schedule_missing": ("scheduler/scheduler_config.json", "DELETE", "scheduler_config.json: is missing"),
        "config_garbage": ("model/config.json", "not json", "config.json: is not valid JSON"),
        "config_text": ("model/config.json", json.dumps(dict(config, swin_embed_dim="16")),
                        "swin_embed_dim must be a whole number"),
        "config_negative": ("model/config.json", json.dumps(dict(config, num_queries=-4)),
                            "num_queries must be a whole number"),
        "config_float": ("model/config.json", json.dumps(dict(config, prd_depth=2.5)),
                         "prd_depth must be a whole number"),
        "config_list": ("model/config.json", json.dumps(dict(config, cond_size=64)), "cond_size must be a list"),
        "config_unknown": ("model/config.json", json.dumps(dict(config, depth=3)), "unknown CFLD config fields depth"),
        "config_huge": ("model/config.json", json.dumps(dict(config, prompt_dim=16384, prd_depth=64,
                                                             unet=dict(config["unet"], cross_attention_dim=16384))),
                        "billion parameters"),
        "config_big_shapes": ("model/config.json", json.dumps(dict(config, prompt_dim=4096,
                                                                   unet=dict(config["unet"],
                                                                             cross_attention_dim=4096))),
                              "does not fit the model"),
        "config_block": ("model/config.json", json.dumps(dict(config, unet=dict(config["unet"], down_block_types=[
            "FooBlock2D"] * 4))), "does not describe a model"),
        "config_pose_channels": ("model/config.json", json.dumps(dict(config, pose_channels=18)),
                                 "pose_channels must be 21"),
        "config_pose_downscale": ("model/config.json", json.dumps(dict(config, pose_downscale=2)),
                                  "do not fit together"),
        "config_missing": ("model/config.json", "DELETE", "config.json: no such file"),
        "weights_truncated": (weights_file, model_bytes[: len(model_bytes) // 2], "cannot be read as safetensors"),
        "weights_garbage": (weights_file, b"\x00" * 64, "cannot be read as safetensors"),
        "weights_empty": (weights_file, b"", "cannot be read as safetensors"),
        "weights_missing": ("unet/diffusion_pytorch_model.safetensors", "DELETE",
                            "diffusion_pytorch_model.safetensors: is missing"),
        "weights_extra_key": (weights_file, "EXTRA", "1 unexpected keys (extra)"),
        "weights_nan": (weights_file, "NAN", "NaN or infinite"),
        "vae_config": ("vae/config.json", "{", "vae"),
        "vae_weights": ("vae/diffusion_pytorch_model.safetensors", b"\x00" * 10, "vae"),
    }
    variants = {}
    for name, (relative, content, fragment) in edits.items():
        folder = _linked_copy(good, base / name)
        target = folder / relative
        if content == "DELETE":
            target.unlink()
        elif content == "EXTRA":
            target.unlink()
            save_file(extra, str(target))
        elif content == "NAN":
            target.unlink()
            save_file(nan_weights, str(target))
        else:
            _replace(target, content)
        variants[name] = (folder, fragment)
    evil = _write(base / "evil" / "pytorch_model.bin", pickle.dumps({"x": _RunsCode()}, protocol=2))
    _write(evil.parent / "pytorch_model_1.bin", pickle.dumps({}, protocol=2))
    variants["original_evil"] = (evil.parent, "holds Python code or objects (posix.system)")
    _write(base / "original_garbage" / "pytorch_model.bin", b"PK\x03\x04garbage")
    _write(base / "original_garbage" / "pytorch_model_1.bin", b"")
    variants["original_garbage"] = (base / "original_garbage", "cannot be read as a PyTorch state dict")
    return variants


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_dir) -> Workspace:
    root = tmp_path_factory.mktemp("fuzz")
    inputs = root / "in"
    space = Workspace(root, inputs)
    p = space.paths
    p["photo"] = str(shutil.copy(PHOTO, _write(inputs / "photo.png", b"")))
    p["mask"] = str(shutil.copy(MASK, _write(inputs / "mask.png", b"")))
    wide = Image.open(MASK).resize((300, 100))
    p["wide_mask"] = str(_write(inputs / "wide_mask.png", _png(wide)))
    p["black_mask"] = str(_write(inputs / "black_mask.png", _png(Image.new("L", Image.open(MASK).size))))
    side = Image.new("L", Image.open(MASK).size)  # white only left of the person: outside the crop that frames them
    side.paste(255, (0, 0, 40, side.height))
    p["side_mask"] = str(_write(inputs / "side_mask.png", _png(side)))
    table = gallery()
    p["pose"] = str(write_pose_json(table[table.names[0]], inputs / "pose.json"))
    p["poses"] = str(inputs / "poses")
    for i in range(2):
        write_pose_json(table[table.names[i]], inputs / "poses" / f"p{i}.json")
    p["model"] = str(_linked_copy(tiny_model_dir, inputs / "model"))
    for name, content in bad_images().items():
        p[f"img_{name.replace('.', '_')}"] = str(_write(inputs / "images" / name, content))
    for name, content in bad_poses().items():
        p[f"pose_{name.replace('.', '_')}"] = str(_write(inputs / "poses_bad" / name, content))
    for name in ("empty.json", "nested.json", "nan.json"):  # a folder of frames holding one bad pose file each
        folder = inputs / "pose_folders" / name.split(".")[0]
        shutil.copy(p["pose"], _write(folder / "a.json", b""))
        shutil.copy(inputs / "poses_bad" / name, folder / "b.json")
        p[f"posedir_{name.split('.')[0]}"] = str(folder)
    p["empty_dir"] = str(_write(inputs / "empty_dir", None))
    mixed = _write(inputs / "mixed", None)
    shutil.copy(p["pose"], mixed / "a.json")
    shutil.copy(PHOTO, mixed / "b.png")
    p["mixed_dir"] = str(mixed)
    p["a_file"] = str(_write(inputs / "a_file.txt", "just text\n"))
    p["openpose_ok"] = str(_write(inputs / "openpose_ok.json", json.dumps(
        {"people": [{"pose_keypoints_2d": [v for i in range(18) for v in (40.0 + 5 * i, 60.0 + 9 * i, 0.9)]}]})))
    for name, (folder, _) in _model_variants(Path(p["model"]), inputs / "models").items():
        p[f"m_{name}"] = str(folder)
    # metric weights
    p["w_garbage"] = str(_write(inputs / "weights" / "garbage.pth", b"PK\x03\x04not a zip"))
    p["w_evil"] = str(_write(inputs / "weights" / "evil.pth", b""))
    torch.save({"x": _RunsCode()}, p["w_evil"])  # what a malicious .pth looks like
    p["w_raw"] = str(_write(inputs / "weights" / "raw.pth", pickle.dumps({"x": _RunsCode()})))
    p["w_list"] = str(_write(inputs / "weights" / "list.pth", b""))
    torch.save([torch.zeros(1)], p["w_list"])
    p["w_json"] = str(_write(inputs / "weights" / "weights.json", "{}"))
    # evaluation folders
    gen = _write(inputs / "eval" / "generated", None)
    truth = _write(inputs / "eval" / "truth", None)
    for i in range(2):
        shutil.copy(PHOTO, gen / f"a{i}.png")
        shutil.copy(PHOTO, truth / f"a{i}.png")
    p["gen"], p["truth"] = str(gen), str(truth)
    bad_gen = _linked_copy(gen, inputs / "eval" / "bad_generated")
    _write(bad_gen / "a9.png", b"garbage")
    _write(truth / "a9.png", PHOTO.read_bytes())
    p["bad_gen"] = str(bad_gen)
    unmatched = _linked_copy(gen, inputs / "eval" / "unmatched")
    shutil.copy(PHOTO, unmatched / "zzz.png")
    p["unmatched_gen"] = str(unmatched)
    p["name_map_garbage"] = str(_write(inputs / "eval" / "map.csv", b"\xff\xfe\x00"))
    p["name_map_header"] = str(_write(inputs / "eval" / "map2.csv", "a,b\nx,y\n"))
    # conversion
    p["unet_config_text"] = str(_write(inputs / "convert" / "unet.json", json.dumps({"block_out_channels": "x"})))
    p["unet_config_array"] = str(_write(inputs / "convert" / "unet_array.json", "[1]"))
    p["train_yaml_as_model"] = str(_write(inputs / "convert" / "train.yaml", yaml.safe_dump(TRAIN_BASE)))
    # preparation: a release folder and an annotation folder with broken files
    release = _write(inputs / "release" / "img_highres" / "WOMEN" / "x.jpg", PHOTO.read_bytes()).parent.parent
    p["release"] = str(release)
    annotations = _write(inputs / "annotations" / "test.lst", "fashionWOMENxid0000000101_1front.jpg\n").parent
    _write(annotations / "train.lst", "not an image name\n")
    p["annotations"] = str(annotations)
    p["no_annotations"] = str(_write(inputs / "annotations_empty", None))
    train_annotations = _write(inputs / "annotations_train" / "train.lst", "not an image name\n").parent
    _write(train_annotations / "fasion-resize-pairs-train.csv", "from,to\n")
    _write(train_annotations / "fasion-resize-annotation-train.csv", "name:keypoints_y:keypoints_x\n")
    p["annotations_train"] = str(train_annotations)
    # a prepared DeepFashion folder (two photos, two test pairs in two gallery poses) for cfld sample
    from cfld.data import prepare_deepfashion

    rows = (Path(__file__).resolve().parents[1] / "src" / "cfld" / "assets" / "pose_gallery.csv"
            ).read_text().splitlines()
    names = [row.split(":", 1)[0] for row in rows[1:3]]
    for name in names:
        _write(inputs / "df_release" / "img_highres" / Path(name).relative_to("fashion"), PHOTO.read_bytes())
    df_ann = _write(inputs / "df_annotations" / "test.lst", "".join(n + "\n" for n in names)).parent
    _write(df_ann / "fasion-resize-pairs-test.csv", f"from,to\n{names[0]},{names[1]}\n{names[1]},{names[0]}\n")
    _write(df_ann / "fasion-resize-annotation-test.csv", "\n".join(rows[:3]) + "\n")
    prepare_deepfashion(inputs / "df_release" / "img_highres", df_ann, inputs / "df_prepared", splits=["test"],
                        progress=False, workers=1)
    p["prepared"] = str(inputs / "df_prepared")
    p["pairs_unknown"] = str(_write(inputs / "pairs_unknown.csv", "from,to\nfashionWOMENxid0000000101_1front.jpg,"
                                                                  "fashionWOMENxid0000000101_2side.jpg\n"))
    p["pairs_garbage"] = str(_write(inputs / "pairs_garbage.csv", "source;target\n1;2\n"))
    # training configs
    config_dir = _write(inputs / "train", None)
    for name, (change, _) in BAD_TRAIN_CONFIGS.items():
        text = (change if isinstance(change, str)
                else yaml.safe_dump({**TRAIN_BASE, **change}).replace("DATE", "2024-01-01"))
        p[f"cfg_{name}"] = str(_write(config_dir / f"{name}.yaml", text))
    p["cfg_good"] = str(_write(config_dir / "good.yaml", yaml.safe_dump(TRAIN_BASE)))
    p["cfg_json"] = str(_write(config_dir / "bad.json", '{"batch_size": 2,'))
    return space


def snapshot(path: Path) -> object:
    """Everything under ``path`` (names, kinds, sizes, contents of small files), or None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return ("file", path.stat().st_size, hashlib.sha1(path.read_bytes()).hexdigest())
    found = {}
    for item in sorted(path.rglob("*")):
        rel = str(item.relative_to(path))
        if item.is_dir():
            found[rel] = "dir"
        else:
            stat = item.stat()
            content = hashlib.sha1(item.read_bytes()).hexdigest() if stat.st_size < 2**20 else stat.st_mtime_ns
            found[rel] = (stat.st_size, content)
    return found


def check_fails(capsys, ws: Workspace, args: list[str], fragments: list[str], output: Path | None) -> str:
    """Run ``cfld ARGS`` and check the one-line failure, the untouched output and the untouched inputs."""
    args = [ws.fill(a) for a in args]
    before = (snapshot(ws.inputs), snapshot(output) if output else None)
    code, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line: {err!r}"
    assert "Traceback" not in err and "bug in cfld" not in err, err
    for fragment in fragments:
        assert ws.fill(fragment) in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert (snapshot(ws.inputs), snapshot(output) if output else None) == before, "an input or the output changed"
    assert not Path("PWNED").exists() and not (ws.root / "PWNED").exists(), "a config or file ran code"
    return lines[0]


def _offline(monkeypatch) -> None:
    """The Hub is never contacted: an unreachable hub id fails at once, network or not (conftest sets
    HF_HUB_OFFLINE before huggingface_hub is imported; it and diffusers keep the value they read then)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert huggingface_hub.constants.HF_HUB_OFFLINE


def _output(ws: Workspace, case: str) -> Path:
    """An output folder that exists and holds one file: a failed command must leave it so."""
    out = ws.root / "out" / case
    _write(out / "keep.txt", "untouched\n")
    return out


# -- cases ----------------------------------------------------------------------------------------------------------

IMAGE_FAULTS = {
    "empty.png": "cannot be read as an image",
    "garbage.png": "cannot be read as an image",
    "text.png": "cannot be read as an image",
    "truncated.png": "cannot be read as an image",
    "truncated.jpg": "cannot be read as an image",
    "tiny.png": "is only 4x4 pixels",
    "bomb.png": "pixels",
    "float.tif": "floating-point pixels",
    "json.png": "cannot be read as an image",
    "folder.png": "is a ",  # "is a folder" (cfld) or "is a directory" (click's own path check)
}
POSE_FAULTS = {
    "empty.json": "is not valid JSON",
    "unclosed.json": "is not valid JSON",
    "array.json": "neither a cfld pose",
    "nested.json": "nested too deeply",
    "nan.json": "NaN is not a number",
    "overflow.json": "must be a finite number",
    "text_x.json": "must be a finite number",
    "joints17.json": "must list all 18",
    "unknown_joint.json": "unknown joint 'tail'",
    "negative_frame.json": "frame size must be positive",
    "text_frame.json": "a frame size must be two whole numbers",
    "negative_conf.json": "negative confidence",
    "nobody.json": "has no visible joint",
    "openpose_short.json": "pose_keypoints_2d values",
    "openpose_nobody.json": "OpenPose",
    "binary.json": "is not UTF-8 text",
    "garbage.csv": "is not an annotation row",
    "short.csv": "expected 18 y values",
    "far.csv": "more than a frame size outside",
}
ROWS = {
    "short_row": ("[1,2]:[3,4]", "expected 18 y values"),
    "text_row": ("n:[a,b]:[c]", "expected 18 y values"),
    "nan_row": ("[" + ",".join(["nan"] * 18) + "]:[" + ",".join(["1"] * 18) + "]", "is not a finite number"),
    "long_name": ("x" * 400, "no such file, and not an annotation row"),
}

TRANSFER = ["transfer", "-s", "{photo}", "-p", "{pose}", "-m", "{model}", "--steps", "1", "--size", "64x44"]
TRANSFER_OPTIONS = {
    "steps_zero": (["--steps", "0"], "--steps"),
    "steps_over": (["--steps", "5000"], "--steps"),
    "steps_spacing": (["--steps", "1000"], "cannot take 1000 steps"),
    "steps_text": (["--steps", "many"], "--steps"),
    "size_zero": (["--size", "0x0"], "--size"),
    "size_huge": (["--size", "100000x100000"], "--size"),
    "size_text": (["--size", "big"], "--size"),
    "size_three": (["--size", "1x2x3"], "--size"),
    "size_negative": (["--size", "-5x5"], "--size"),
    "seed_negative": (["--seed", "-1"], "--seed"),
    "seed_huge": (["--seed", str(2**70)], "--seed"),
    "seed_text": (["--seed", "abc"], "--seed"),
    "guidance_nan": (["--guidance-pose", "nan"], "--guidance-pose"),
    "guidance_inf": (["--guidance-pose", "inf"], "--guidance-pose"),
    "guidance_minus_inf": (["--guidance-appearance", "-inf"], "--guidance-appearance"),
    "guidance_text": (["--guidance-appearance", "strong"], "--guidance-appearance"),
    "device_bogus": (["--device", "bogus"], "device 'bogus'"),
    "device_cuda_index": (["--device", "cuda:7"], "device 'cuda:7'"),
    "device_mps": (["--device", "mps"], "device 'mps'"),
    "dtype": (["--dtype", "fp8"], "--dtype"),
    "batch_zero": (["--batch-size", "0"], "--batch-size"),
    "scheduler": (["--scheduler", "magic"], "scheduler 'magic'"),
    "scheduler_fast": (["--fast", "--scheduler", "magic"], "scheduler 'magic'"),
    "interval_one": (["--guidance-interval", "0.5"], "--guidance-interval"),
    "interval_text": (["--guidance-interval", "early,late"], "--guidance-interval"),
    "interval_reversed": (["--guidance-interval", "0.8,0.2"], "--guidance-interval"),
    "interval_nan": (["--fast", "--guidance-interval", "nan,1"], "--guidance-interval"),
    "interval_over": (["--guidance-interval", "0,1e9"], "--guidance-interval"),
    "pose_frame": (["--pose-frame", "0x5"], "--pose-frame"),
    "framing_save_without_frame": (["--save-framed", "--no-frame"], "--save-framed"),
}

MODEL_FAULTS = {
    "missing": ("{root}/no-such-model", "is not a CFLD model"),
    "file": ("{a_file}", "is a file"),
    "empty": ("{empty_dir}", "is not a CFLD model"),
    "hub": ("nobody-cfld/no-such-model", "cannot be downloaded from the Hugging Face Hub"),
}


def _cases():
    """(id, args, fragments, output kind) for every case; output kind: "out" (an existing folder that must
    stay as it is), "fresh" (a path that must stay absent), a placeholder of a file, or None."""
    cases = []
    add = lambda cid, args, fragments, output="out": cases.append((cid, args, fragments, output))  # noqa: E731
    for name, fault in IMAGE_FAULTS.items():
        key = "{img_" + name.replace(".", "_") + "}"
        add(f"transfer-image-{name}", ["transfer", "-s", key, "-p", "{pose}", "-m", "{model}", "-o", "{out}"],
            [name, fault])
        if name != "tiny.png":  # a skeleton over a 4x4 picture is odd, not wrong
            add(f"pose-draw-image-{name}", ["pose", "draw", "{pose}", "--image", key, "-o", "{out}/x.png"],
                [name, fault])
        add(f"edit-style-transfer-reference-{name}", ["edit", "style-transfer", "-r", key, "--reference-pose", "{pose}",
                                                      "--mask", "{mask}", "-s", "{photo}", "-m", "{model}", "-o",
                                                      "{out}/e.png"], [name, fault])
        add(f"edit-style-transfer-mask-{name}", ["edit", "style-transfer", "-r", "{photo}", "--reference-pose",
                                                 "{pose}", "--mask", key, "-s", "{photo}", "-m", "{model}", "-o",
                                                 "{out}/e.png"],
            [name, fault if name != "tiny.png" else "pixels"])
        add(f"edit-interpolate-a-{name}", ["edit", "interpolate", "-a", key, "-b", "{photo}", "-p", "{pose}", "-m",
                                           "{model}", "-o", "{out}/s.png", "--steps", "1"], [name, fault])
        add(f"animate-source-{name}",
            ["animate", "-s", key, "-p", "{poses}", "-m", "{model}", "-o", "{out}", "--no-mp4"], [name, fault])
        add(f"pose-detect-{name}", ["pose", "detect", key, "-o", "{out}/p.json"], [name, fault])
        add(f"transfer-pose-from-{name}",
            ["transfer", "-s", "{photo}", "--pose-from", key, "-m", "{model}", "-o", "{out}"], [name, fault])
        add(f"frame-image-{name}", ["frame", key, "-o", "{out}/framed"], [name, fault])
    # cfld frame (cases named frame-detect-* run the detector)
    add("frame-missing", ["frame", "{root}/nowhere.png", "-o", "{out}/framed"], ["nowhere.png", "no such file"])
    add("frame-folder-empty", ["frame", "{empty_dir}", "-o", "{out}/framed"], ["empty_dir", "nothing in it"])
    add("frame-folder-no-photos", ["frame", "{poses}", "-o", "{out}/framed"], ["poses", "without photos"])
    add("frame-same-stem", ["frame", "{gen}", "{truth}", "-o", "{out}/framed"], ["a0.png", "same name stem"])
    add("frame-output-file", ["frame", "{photo}", "-o", "{a_file}"], ["a_file.txt", "is a file"], "{a_file}")
    add("frame-output-png", ["frame", "{photo}", "-o", "{out}/framed.png"], ["framed.png", "looks like a file name"])
    add("frame-output-read-only", ["frame", "{photo}", "-o", str(READ_ONLY)], [str(READ_ONLY), "cannot be written"],
        None)
    add("frame-output-existing", ["frame", "{gen}", "-o", "{truth}"], ["a0.png", "already exists"], "{truth}")
    add("frame-replaces-photo", ["frame", "{gen}", "-o", "{gen}", "--overwrite"], ["a0.png", "is one of the photos"],
        "{gen}")
    for value in ("0x0", "100000x100000", "big", "1x2x3"):
        add(f"frame-size-{value}", ["frame", "{photo}", "-o", "{out}/framed", "--size", value], ["--size"])
    add("frame-detect-nobody", ["frame", "{black_mask}", "-o", "{out}/framed"], ["black_mask.png", "no person found"])
    add("frame-detect-many-nobody",
        ["frame", "{black_mask}", "{img_garbage_png}", "-o", "{out}/framed", "--no-progress"],
        ["none of the 2 photos could be framed", "nothing was written"])
    # framing in the commands that take person photos (transfer-frame-*, edit-frame-* run the detector)
    add("transfer-frame-nobody", ["transfer", "-s", "{black_mask}", "-p", "{pose}", "-m", "{model}", "-o", "{out}"],
        ["black_mask.png", "no person found"])
    add("transfer-frame-pose-fit", ["transfer", "-s", "{photo}", "--pose-from", "{photo}", "--pose-fit", "body",
                                    "-m", "{model}", "-o", "{out}"], ["--pose-fit applies with --no-frame"])
    add("transfer-frame-save-same-stem", [*TRANSFER, "-s", "{gen}/a0.png", "-s", "{truth}/a0.png", "--save-framed",
                                          "-o", "{out}"], ["a0.png", "same name stem"])
    add("edit-frame-mask-outside", ["edit", "style-transfer", "-r", "{photo}", "--reference-pose", "{pose}",
                                    "--mask", "{side_mask}", "-s", "{photo}", "-m", "{model}", "-o", "{out}/e.png"],
        ["side_mask.png", "no white pixel inside the crop"])
    add("edit-frame-save-onto-output", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", "{pose}",
                                        "-m", "{model}", "-o", "{out}/photo_framed.png", "--save-framed"],
        ["photo_framed.png", "--save-framed would write"])
    for name, fault in POSE_FAULTS.items():
        key = "{pose_" + name.replace(".", "_") + "}"
        frame = ["--frame", "256x176"] if name.startswith("openpose") else []
        for command in ("convert", "flip"):
            add(f"pose-{command}-{name}", ["pose", command, key, *frame, "-o", "{out}/p.json"], [name, fault])
        add(f"pose-render-{name}", ["pose", "render", key, *frame, "-o", "{out}/p.npy"], [name, fault])
        add(f"pose-draw-{name}", ["pose", "draw", key, *frame, "-o", "{out}/p.png"], [name, fault])
        add(f"pose-retarget-{name}", ["pose", "retarget", key, *frame, "--to", "256x176", "-o", "{out}/p.json"],
            [name, fault])
        add(f"transfer-pose-{name}",
            [*TRANSFER, "-p", key, *(["--pose-frame", "256x176"] if frame else []), "-o", "{out}"], [name, fault])
        add(f"edit-interpolate-pose-{name}", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", key,
                                              *(["--pose-frame", "256x176"] if frame else []), "-m", "{model}",
                                              "-o", "{out}/s.png"], [name, fault])
    for rid, (row, fault) in ROWS.items():
        add(f"pose-convert-row-{rid}", ["pose", "convert", row, "-o", "{out}/p.json"], [fault])
        add(f"transfer-row-{rid}", [*TRANSFER, "-p", row, "-o", "{out}"], [fault])
    for name in ("empty", "nested", "nan"):
        add(f"animate-poses-{name}", ["animate", "-s", "{photo}", "-p", "{posedir_" + name + "}", "-m", "{model}",
                                      "-o", "{out}", "--no-mp4"], ["b.json"])
    add("animate-poses-missing", ["animate", "-s", "{photo}", "-p", "{root}/nowhere", "-m", "{model}", "-o", "{out}"],
        ["nowhere"])
    add("animate-poses-empty", ["animate", "-s", "{photo}", "-p", "{empty_dir}", "-m", "{model}", "-o", "{out}"],
        ["holds no pose files"])
    add("animate-poses-mixed", ["animate", "-s", "{photo}", "-p", "{mixed_dir}", "-m", "{model}", "-o", "{out}"],
        ["holds both"])
    for value in ("nan", "0", "inf", "1e9", "-1", "fast"):
        add(f"animate-fps-{value}", ["animate", "-s", "{photo}", "-p", "{poses}", "-m", "{model}", "-o", "{out}",
                                     "--no-mp4", "--fps", value], ["--fps"])
    for cid, (extra, fragment) in TRANSFER_OPTIONS.items():
        add(f"transfer-option-{cid}", [*TRANSFER, *extra, "-o", "{out}"], [fragment])
        if cid.startswith(("steps", "seed", "device", "size_huge", "scheduler", "interval", "framing")):
            add(f"animate-option-{cid}", ["animate", "-s", "{photo}", "-p", "{poses}", "-m", "{model}", "-o", "{out}",
                                          "--no-mp4", *extra], [fragment])
            add(f"edit-interpolate-option-{cid}", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p",
                                                   "{pose}", "-m", "{model}", "-o", "{out}/s.png", *extra], [fragment])
    add("transfer-output-is-a-file", [*TRANSFER, "-o", "{a_file}"], ["a_file.txt", "file"], "{a_file}")
    add("transfer-output-read-only", [*TRANSFER, "-o", str(READ_ONLY)], [str(READ_ONLY), "cannot be written"], None)
    add("transfer-no-pose", ["transfer", "-s", "{photo}", "-m", "{model}", "-o", "{out}"], ["give a target pose"])
    for mid, (model, fragment) in MODEL_FAULTS.items():
        add(f"transfer-model-{mid}", [*TRANSFER, "-m", model, "-o", "{out}"], [fragment])
    for name in ("index_garbage", "index_array", "index_deep", "index_scheduler", "index_scheduler_type",
                 "index_guidance", "schedule_text", "schedule_kind", "schedule_betas", "schedule_missing",
                 "config_garbage", "config_text", "config_negative", "config_float", "config_list", "config_unknown",
                 "config_huge", "config_big_shapes", "config_block", "config_pose_channels", "config_pose_downscale",
                 "config_missing", "weights_truncated", "weights_garbage", "weights_empty", "weights_missing",
                 "weights_extra_key", "weights_nan", "vae_config", "vae_weights", "original_evil", "original_garbage"):
        # --no-frame: the model's faults, without framing the photo first (the cases above and below frame it)
        add(f"transfer-model-{name}", [*TRANSFER, "-m", "{m_" + name + "}", "-o", "{out}", "--no-frame"],
            ["{m_" + name + "}"])
    for name in ("weights_nan", "config_text", "original_evil"):
        add(f"animate-model-{name}", ["animate", "-s", "{photo}", "-p", "{poses}", "-m", "{m_" + name + "}", "-o",
                                      "{out}", "--no-mp4"], ["{m_" + name + "}"])
        add(f"edit-model-{name}", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", "{pose}",
                                   "-m", "{m_" + name + "}", "-o", "{out}/s.png"], ["{m_" + name + "}"])
        add(f"convert-model-{name}", ["convert", "{m_" + name + "}", "{out}/converted"], ["{m_" + name + "}"])
    # demo and app (only what fails before the app's server starts)
    add("demo-steps", ["demo", "--steps", "1000", "-o", "{out}"], ["cannot take 1000 steps"])
    add("demo-poses", ["demo", "--poses", "{pose_garbage_csv}", "-o", "{out}"], ["garbage.csv"])
    add("demo-seed", ["demo", "--seed", "-1", "-o", "{out}"], ["--seed"])
    add("demo-output-read-only", ["demo", "-o", str(READ_ONLY)], [str(READ_ONLY), "cannot be written"], None)
    add("demo-output-file", ["demo", "-o", "{a_file}"], ["a_file.txt"], "{a_file}")
    add("app-port", ["app", "-m", "{model}", "--port", "80"], ["--port"])
    add("app-device", ["app", "-m", "{model}", "--device", "bogus"], ["device 'bogus'"])
    add("app-model-nan", ["app", "-m", "{m_weights_nan}"], ["{m_weights_nan}", "NaN"])
    add("app-model-evil", ["app", "-m", "{m_original_evil}"], ["holds Python code"])
    # pose commands' options
    for value in ("inf", "nan", "0", "-1", "1e9", "wide"):
        add(f"pose-render-sigma-{value}", ["pose", "render", "{pose}", "--sigma", value, "-o", "{out}/p.npy"],
            ["--sigma"])
    for option, value in (("--size", "100000x100000"), ("--size", "0x0"), ("--size", "3000x3000")):
        add(f"pose-render-size-{value}", ["pose", "render", "{pose}", option, value, "-o", "{out}/p.npy"], ["--size"])
    add("pose-render-suffix", ["pose", "render", "{pose}", "-o", "{out}/p.txt"], ["p.txt", ".safetensors or .npy"])
    add("pose-draw-size-huge", ["pose", "draw", "{pose}", "--size", "100000x100000", "-o", "{out}/p.png"], ["--size"])
    add("pose-draw-frame-huge", ["pose", "draw", "{openpose_ok}", "--frame", "100000x100000",
                                 "-o", "{out}/p.png"], ["openpose_ok.json", "--size"])
    add("pose-draw-output-folder", ["pose", "draw", "{pose}", "-o", "{out}"], ["is a directory"])
    add("pose-retarget-to-zero", ["pose", "retarget", "{pose}", "--to", "0x0", "-o", "{out}/p.json"], ["--to"])
    add("pose-retarget-to-huge", ["pose", "retarget", "{pose}", "--to", "100000x100000", "-o", "{out}/p.json"],
        ["--to"])
    for value in ("nan", "-1", "inf"):
        add(f"pose-retarget-padding-{value}", ["pose", "retarget", "{pose}", "--to", "256x176", "--fit", "body",
                                               "--padding", value, "-o", "{out}/p.json"], ["--padding"])
    add("pose-convert-person", ["pose", "convert", "{pose_openpose_short_json}", "--frame", "256x176", "--person", "-1",
                                "-o", "{out}/p.json"], ["--person"])
    add("pose-convert-frame", ["pose", "convert", "{pose}", "--frame", "abc", "-o", "{out}/p.json"], ["--frame"])
    add("pose-convert-name", ["pose", "convert", "{pose_short_csv}", "--name", "nobody.jpg", "-o", "{out}/p.json"],
        ["short.csv"])
    add("pose-convert-existing", ["pose", "convert", "{pose}", "-o", "{out}/keep.txt"], ["keep.txt", "already exists"])
    add("pose-convert-read-only", ["pose", "convert", "{pose}", "-o", f"{READ_ONLY}/p.json"], [str(READ_ONLY)], None)
    for value in ("nan", "2", "-0.5"):
        add(f"pose-detect-min-confidence-{value}", ["pose", "detect", "{photo}", "--min-confidence", value,
                                                    "-o", "{out}/p.json"], ["--min-confidence"])
    add("pose-detect-nobody", ["pose", "detect", "{black_mask}", "-o", "{out}/p.json"],
        ["black_mask.png", "no person found"])
    add("pose-detect-draw-existing", ["pose", "detect", "{photo}", "-o", "{out}/p.json", "--draw", "{out}/keep.txt"],
        ["keep.txt", "already exists"])
    # pose detect with several photos or a folder: -o and --draw are folders
    add("pose-detect-folder-empty", ["pose", "detect", "{empty_dir}", "-o", "{out}/poses"],
        ["empty_dir", "nothing in it"])
    add("pose-detect-folder-no-photos", ["pose", "detect", "{poses}", "-o", "{out}/poses"], ["poses", "without photos"])
    add("pose-detect-many-missing", ["pose", "detect", "{photo}", "{root}/nowhere.png", "-o", "{out}/poses"],
        ["nowhere.png", "no such file or folder"])
    add("pose-detect-many-same-stem", ["pose", "detect", "{gen}", "{truth}", "-o", "{out}/poses"],
        ["a0.png", "same name stem"])
    add("pose-detect-many-output-file", ["pose", "detect", "{photo}", "{mask}", "-o", "{a_file}"],
        ["a_file.txt", "-o names a folder"], "{a_file}")
    add("pose-detect-many-output-json", ["pose", "detect", "{gen}", "-o", "{out}/poses.json"],
        ["poses.json", "looks like a file"])
    add("pose-detect-many-draw-existing",
        ["pose", "detect", "{photo}", "{mask}", "-o", "{out}/poses", "--draw", "{out}/keep.txt"],
        ["keep.txt", "--draw names a folder"])
    add("pose-detect-many-replaces-photos",
        ["pose", "detect", "{gen}", "-o", "{out}", "--draw", "{gen}", "--overwrite"],
        ["a0.png", "is one of the photos"])
    add("pose-detect-many-read-only", ["pose", "detect", "{gen}", "-o", str(READ_ONLY)],
        [str(READ_ONLY), "cannot be written"], None)
    add("pose-detect-many-nobody",
        ["pose", "detect", "{black_mask}", "{img_garbage_png}", "-o", "{out}/poses", "--no-progress"],
        ["none of the 2 photos gave a pose", "nothing was written"])
    # edit
    add("edit-mask-aspect", ["edit", "style-transfer", "-r", "{photo}", "--reference-pose", "{pose}", "--mask",
                             "{wide_mask}", "-s", "{photo}", "-m", "{model}", "-o", "{out}/e.png"],
        ["wide_mask.png", "shape"])
    add("edit-mask-empty", ["edit", "style-transfer", "-r", "{photo}", "--reference-pose", "{pose}", "--mask",
                            "{black_mask}", "-s", "{photo}", "-m", "{model}", "-o", "{out}/e.png"], ["is empty"])
    add("edit-output-format", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", "{pose}", "-m", "{model}",
                               "-o", "{out}/strip.txt"], ["strip.txt", "not an image format"])
    add("edit-output-existing", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", "{pose}", "-m",
                                 "{model}", "-o", "{out}/keep.txt"], ["keep.txt"])
    add("edit-interpolate-one", ["edit", "interpolate", "-a", "{photo}", "-b", "{photo}", "-p", "{pose}", "-m",
                                 "{model}", "-n", "1", "-o", "{out}/s.png"], ["-n"])
    add("edit-reference-pose-bad", ["edit", "style-transfer", "-r", "{photo}", "--reference-pose", "{pose_nan_json}",
                                    "--mask", "{mask}", "-s", "{photo}", "-m", "{model}", "-o", "{out}/e.png"],
        ["nan.json"])
    # evaluate
    evaluate = ["evaluate", "-g", "{gen}", "-t", "{truth}", "--metrics", "psnr,ssim", "--quiet"]
    add("evaluate-generated-missing", ["evaluate", "-g", "{root}/nowhere", "-t", "{truth}"],
        ["nowhere", "no such folder"])
    add("evaluate-generated-empty", ["evaluate", "-g", "{empty_dir}", "-t", "{truth}"],
        ["empty_dir", "holds no images"])
    add("evaluate-generated-file", ["evaluate", "-g", "{a_file}", "-t", "{truth}"], ["a_file.txt"])
    add("evaluate-generated-garbage", ["evaluate", "-g", "{bad_gen}", "-t", "{truth}", "--metrics", "psnr", "--quiet"],
        ["a9.png", "cannot be read as an image"])
    add("evaluate-unmatched", ["evaluate", "-g", "{unmatched_gen}", "-t", "{truth}", "--metrics", "psnr"], ["zzz.png"])
    add("evaluate-size-small", [*evaluate, "--size", "8x8"], ["--size"])
    add("evaluate-size-huge", [*evaluate, "--size", "100000x100000"], ["--size"])
    add("evaluate-metrics", ["evaluate", "-g", "{gen}", "-t", "{truth}", "--metrics", "beauty"],
        ["--metrics", "beauty"])
    add("evaluate-batch", [*evaluate, "--batch-size", "0"], ["--batch-size"])
    add("evaluate-device", [*evaluate, "--device", "quantum"], ["device 'quantum'"])
    add("evaluate-name-map-garbage", [*evaluate, "--name-map", "{name_map_garbage}"], ["map.csv"])
    add("evaluate-name-map-header", [*evaluate, "--name-map", "{name_map_header}"],
        ["map2.csv", "generated,ground_truth"])
    add("evaluate-output-existing", [*evaluate, "-o", "{out}/keep.txt"], ["keep.txt", "already exists"])
    add("evaluate-output-read-only", [*evaluate, "-o", f"{READ_ONLY}/m.json"], [str(READ_ONLY)], None)
    for name, fragment in (("w_garbage", "cannot be read"), ("w_evil", "holds Python code"),
                           ("w_list", "not a state dict"), ("w_json", "not a file written by torch.save"),
                           ("w_raw", "not a file written by torch.save"), ("missing", "no such file")):
        path = "{root}/missing.pth" if name == "missing" else "{" + name + "}"
        add(f"evaluate-inception-{name}", ["evaluate", "-g", "{gen}", "-t", "{truth}", "--metrics", "fid", "--quiet",
                                           "--no-fid-cache", "--inception-weights", path], [fragment])
        add(f"evaluate-alexnet-{name}", ["evaluate", "-g", "{gen}", "-t", "{truth}", "--metrics", "lpips", "--quiet",
                                         "--alexnet-weights", path], [fragment])
    # sample
    sample = ["sample", "-m", "{model}", "-d", "{prepared}", "--steps", "2", "--quiet"]
    add("sample-data-missing", ["sample", "-m", "{model}", "-d", "{root}/nowhere", "-o", "{out}"], ["nowhere"])
    add("sample-data-unprepared", ["sample", "-m", "{model}", "-d", "{empty_dir}", "-o", "{out}"],
        ["empty_dir", "cfld prepare"])
    add("sample-split", [*sample, "--split", "train", "-o", "{out}"], ["no 'train' split"])
    add("sample-pairs-unknown", [*sample, "--pairs", "{pairs_unknown}", "-o", "{out}"],
        ["pairs_unknown.csv", "no keypoint row"])
    add("sample-pairs-garbage", [*sample, "--pairs", "{pairs_garbage}", "-o", "{out}"],
        ["pairs_garbage.csv", "from,to"])
    add("sample-pairs-from", [*sample, "--pairs-from", "9", "-o", "{out}"], ["--pairs-from", "skips all 2 pairs"])
    add("sample-limit", [*sample, "--limit", "0", "-o", "{out}"], ["--limit"])
    add("sample-size", [*sample, "--size", "100000x100000", "-o", "{out}"], ["--size"])
    add("sample-size-twice", [*sample, "--size", "64x44", "--size", "64x44", "-o", "{out}"], ["--size", "twice"])
    add("sample-steps", [*sample, "--steps", "0", "-o", "{out}"], ["--steps"])
    add("sample-scheduler", [*sample, "--scheduler", "magic", "-o", "{out}"], ["magic"])
    add("sample-interval", [*sample, "--fast", "--guidance-interval", "1,0", "-o", "{out}"], ["--guidance-interval"])
    add("sample-seed", [*sample, "--seed", "-1", "-o", "{out}"], ["--seed"])
    add("sample-guidance", [*sample, "--guidance-pose", "nan", "-o", "{out}"], ["--guidance-pose"])
    add("sample-batch", [*sample, "--batch-size", "0", "-o", "{out}"], ["--batch-size"])
    add("sample-device", [*sample, "--device", "quantum", "-o", "{out}"], ["device 'quantum'"])
    add("sample-metrics-alone", [*sample, "--metrics", "ssim", "-o", "{out}"], ["--evaluate"])
    add("sample-metrics", [*sample, "--evaluate", "--metrics", "beauty", "-o", "{out}"], ["--metrics", "beauty"])
    add("sample-output-file", [*sample, "-o", "{a_file}"], ["a_file.txt"], "{a_file}")
    add("sample-output-read-only", [*sample, "-o", str(READ_ONLY)], [str(READ_ONLY), "cannot be written"], None)
    add("sample-model-nan", [*sample[:2], "{m_weights_nan}", *sample[3:], "-o", "{out}"], ["{m_weights_nan}", "NaN"])
    # convert
    add("convert-source-empty", ["convert", "{empty_dir}", "{out}/c"], ["empty_dir", "holds neither"])
    add("convert-config-pose", ["convert", "{m_original_garbage}", "{out}/c", "--config", "{pose}"], ["pose.json"])
    add("convert-config-training-yaml",
        ["convert", "{m_original_garbage}", "{out}/c", "--config", "{train_yaml_as_model}"], ["train.yaml"])
    add("convert-config-folder", ["convert", "{m_original_garbage}", "{out}/c", "--config", "{empty_dir}"],
        ["empty_dir"])
    add("convert-config-garbage", ["convert", "{m_original_garbage}", "{out}/c", "--config", "{img_garbage_png}"],
        ["garbage.png"])
    add("convert-unet-config-text",
        ["convert", "{m_original_garbage}", "{out}/c", "--unet-config", "{unet_config_text}"], ["unet.json"])
    add("convert-unet-config-array",
        ["convert", "{m_original_garbage}", "{out}/c", "--unet-config", "{unet_config_array}"],
        ["unet_array.json", "not a JSON object"])
    add("convert-dest-read-only", ["convert", "{model}", f"{READ_ONLY}/c"], [str(READ_ONLY), "cannot be written"], None)
    add("convert-dest-file", ["convert", "{model}", "{a_file}"], ["a_file.txt"], "{a_file}")
    # prepare
    prepare = ["prepare", "deepfashion", "-i", "{release}", "-a", "{annotations}", "--no-progress"]
    add("prepare-read-only", [*prepare, "-o", str(READ_ONLY)], [str(READ_ONLY), "cannot be written"], None)
    add("prepare-inside-source", [*prepare, "-o", "{release}/out"], ["inside the source"], None)
    add("prepare-output-file", [*prepare, "-o", "{a_file}"], ["a_file.txt", "is a file"], "{a_file}")
    add("prepare-annotations-missing",
        ["prepare", "deepfashion", "-i", "{release}", "-a", "{no_annotations}", "-o", "{out}"], ["annotations_empty"])
    add("prepare-annotations-incomplete", [*prepare, "--split", "train", "-o", "{out}"], ["annotations", "has no"])
    add("prepare-list-garbage", [*prepare, "--split", "train", "-o", "{out}", "-a", "{annotations_train}"],
        ["train.lst"])
    add("prepare-size", [*prepare, "--size", "0x0", "-o", "{out}"], ["--size"])
    add("prepare-workers", [*prepare, "--workers", "0", "-o", "{out}"], ["--workers"])
    # train
    for name, (_, fragment) in BAD_TRAIN_CONFIGS.items():
        add(f"train-config-{name}", ["train", "-c", "{cfg_" + name + "}", "-o", "{fresh}"], [fragment], "fresh")
    add("train-config-json", ["train", "-c", "{cfg_json}", "-o", "{fresh}"], ["bad.json", "not valid JSON"], "fresh")
    add("train-config-missing", ["train", "-c", "{root}/none.yaml", "-o", "{fresh}"], ["none.yaml"], "fresh")
    add("train-config-folder", ["train", "-c", "{empty_dir}", "-o", "{fresh}"], ["empty_dir"], "fresh")
    add("train-max-steps", ["train", "-c", "{cfg_good}", "-o", "{fresh}", "--max-steps", "0"], ["--max-steps"], "fresh")
    add("train-output-file", ["train", "-c", "{cfg_good}", "-o", "{a_file}"], ["a_file.txt"], "{a_file}")
    add("train-output-read-only", ["train", "-c", "{cfg_good}", "-o", str(READ_ONLY)], [str(READ_ONLY)], None)
    add("train-existing-run", ["train", "-c", "{cfg_good}", "-o", "{run}"], ["already holds a training run"], "{run}")
    add("train-resume-nothing", ["train", "-c", "{cfg_good}", "-o", "{fresh}", "--resume"], ["no checkpoint"], "fresh")
    add("train-resume-not-checkpoint", ["train", "-c", "{cfg_good}", "-o", "{fresh}", "--resume", "{empty_dir}"],
        ["not a training checkpoint"], "fresh")
    for name, (_, fragment) in BAD_CHECKPOINTS.items():
        add(f"train-resume-{name}", ["train", "-o", "{run_" + name + "}", "--resume"], [fragment], "{run_" + name + "}")
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def runs(ws, tmp_path_factory) -> Workspace:
    """A real training run (one checkpoint) and damaged copies of it, for the --resume cases."""
    from cfld.training import TrainConfig, Trainer

    base = ws.inputs / "runs"
    config = TrainConfig.from_dict(dict(TRAIN_BASE, max_steps=2))
    good = base / "good"
    Trainer(config, good, progress=False).train()
    (good / "model").rename(base / "model-aside")  # a run stopped after its checkpoint, before the final model
    ws.paths["run"] = str(good)
    for name, (change, _) in BAD_CHECKPOINTS.items():
        run_dir = _linked_copy(good, base / name)
        step = next((run_dir / "checkpoints").glob("step-*"))
        action, _, target = change.partition(" ")
        if action == "state" or action == "config":
            key, _, value = target.partition("=")
            file = step / ("trainer_state.json" if action == "state" else "config.json")
            data = json.loads(file.read_text())
            data[key] = int(value) if value.lstrip("-").isdigit() else value
            _replace(file, json.dumps(data))
        else:
            file = step / target
            if action == "delete":
                file.unlink()
            elif action == "truncate":
                _replace(file, file.read_bytes()[: file.stat().st_size // 2])
            elif action == "garbage":
                _replace(file, b"\x00garbage")
            elif action == "wrong":
                file.unlink()
                save_file({"torch": torch.zeros(3)}, str(file), metadata={"numpy": "[]", "python": "[]"})
            elif action == "nan":
                weights = load_file(str(file))
                key = next(iter(weights))
                file.unlink()
                save_file(dict(weights, **{key: torch.full_like(weights[key], float("nan"))}), str(file))
        ws.paths[f"run_{name}"] = str(run_dir)
    return ws


@pytest.mark.parametrize("cid,args,fragments,output", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_fails_cleanly(request, capsys, monkeypatch, ws, cid, args, fragments, output):
    _offline(monkeypatch)
    monkeypatch.chdir(ws.root)
    if cid.startswith("train-"):
        request.getfixturevalue("runs")
    if cid.startswith("evaluate-alexnet"):
        pytest.importorskip("lpips", reason="LPIPS needs the 'metrics' extra")
    if cid.startswith("app-"):
        pytest.importorskip("gradio", reason="the web app needs the 'app' extra")
    if cid.startswith(("pose-detect", "transfer-pose-from", "frame-detect", "transfer-frame", "edit-frame")) or (
            _frames_first(cid, args)):
        pytest.importorskip("mediapipe", reason="pose detection needs the 'detect' extra")
    ws.paths["out"] = str(_output(ws, cid))
    ws.paths["fresh"] = str(ws.root / "fresh" / cid)
    ws.paths["root"] = str(ws.root)
    target = {"out": Path(ws.paths["out"]), "fresh": Path(ws.paths["fresh"]), None: None}.get(output)
    if target is None and output is not None:
        target = Path(ws.fill(output))
    check_fails(capsys, ws, args, fragments, target)
    if output == "fresh":
        assert not Path(ws.paths["fresh"]).exists()


def _frames_first(cid: str, args: list[str]) -> bool:
    """Whether a case's command frames its photos (MediaPipe) before it meets the fault: a model's fault, or a
    sampling option that only the loaded model's schedule refuses."""
    return (cid.split("-")[0] in ("transfer", "animate", "edit") and "--no-frame" not in args
            and ("-model-" in cid or cid.endswith("steps_spacing")))


def test_every_command_is_fuzzed():
    """Each command has cases, and every kind of input the issue lists is among them."""
    from cfld.cli import COMMANDS

    commands = {c[0].split("-")[0] for c in CASES}
    assert set(COMMANDS) <= commands, set(COMMANDS) - commands
    ids = " ".join(c[0] for c in CASES)
    assert all(kind in ids for kind in ("image", "pose", "option", "model", "config", "resume", "read-only"))
    assert "inception" in ids and "alexnet" in ids


# -- the web app: the same inputs through what its buttons call ------------------------------------------------------


def _app_cases():
    mode_gallery, mode_json = "gallery pose", "pose JSON file"
    repose = lambda **kw: ("repose", dict(dict(source_path="{photo}", mode=mode_gallery, gallery_index=0,  # noqa: E731
                                               pose_photo=None, pose_json=None, steps=1, guidance_pose=2.0,
                                               guidance_appearance=2.0, seed=0), **kw))
    cases = {
        "no-photo": (repose(source_path=None), "no photo uploaded"),
        "garbage-photo": (repose(source_path="{img_garbage_png}"), "garbage.png"),
        "bomb-photo": (repose(source_path="{img_bomb_png}"), "bomb.png"),
        "float-photo": (repose(source_path="{img_float_tif}"), "floating-point"),
        "gallery-index": (repose(gallery_index=999), "has no pose number 999"),
        "gallery-index-text": (repose(gallery_index="first"), "must be a whole number"),
        "pose-json-nested": (repose(mode=mode_json, pose_json="{pose_nested_json}"), "nested.json"),
        "pose-json-nan": (repose(mode=mode_json, pose_json="{pose_nan_json}"), "nan.json"),
        "pose-json-missing": (repose(mode=mode_json, pose_json=None), "no file uploaded"),
        "pose-mode": (repose(mode="telepathy"), "choose one of"),
        "steps-nan": (repose(steps=float("nan")), "steps: must be a whole number"),
        "steps-huge": (repose(steps=5000), "steps: must lie between"),
        "seed-text": (repose(seed="abc"), "seed: must be a whole number"),
        "seed-huge": (repose(seed=2**70), "seed: must be a whole number from 0"),
        "guidance-nan": (repose(guidance_pose=float("nan")), "guidance_pose must be a finite number"),
        "guidance-inf": (repose(guidance_appearance=float("inf")), "guidance_appearance must be a finite number"),
        "interpolate-count": (("interpolate", dict(path_a="{photo}", path_b="{photo}", gallery_index=0, count=100,
                                                   steps=1, seed=0)), "must lie between 2 and 8"),
        "interpolate-garbage": (("interpolate", dict(path_a="{img_truncated_png}", path_b="{photo}", gallery_index=0,
                                                     count=3, steps=1, seed=0)), "truncated.png"),
        "style-mask-shape": (("style_transfer", dict(reference_path="{photo}", reference_pose_json="{pose}",
                                                     mask_path="{wide_mask}", source_path="{photo}", steps=1, seed=0)),
                             "shape"),
        "animate-nothing": (("animate", dict(source_path="{photo}", files=[], fps=8, steps=1, seed=0)), "upload"),
        "animate-fps": (("animate", dict(source_path="{photo}", files=["{pose}"], fps=float("nan"), steps=1, seed=0)),
                        "fps"),
    }
    return cases


APP_CASES = _app_cases()


@pytest.mark.parametrize("name", list(APP_CASES))
def test_app_refuses_bad_uploads_in_one_sentence(ws, reference_pipeline, name):
    pytest.importorskip("gradio", reason="the web app needs the 'app' extra")
    from cfld import app as web
    from cfld.errors import CFLDError

    (method, kwargs), fragment = APP_CASES[name]
    app = web.App(reference_pipeline, default_steps=1)
    kwargs = {k: ws.fill(v) if isinstance(v, str) else [ws.fill(x) for x in v] if isinstance(v, list) else v
              for k, v in kwargs.items()}
    before = snapshot(ws.inputs)
    with pytest.raises(CFLDError) as error:
        getattr(app, method)(**kwargs)
    assert "\n" not in str(error.value) and fragment in str(error.value), str(error.value)
    assert snapshot(ws.inputs) == before


def test_app_shows_an_unexpected_error_as_one_sentence(capsys):
    gr = pytest.importorskip("gradio", reason="the web app needs the 'app' extra")
    from cfld import app as web

    def broken(photo):
        raise KeyError("boom")

    with pytest.raises(gr.Error) as error:
        web.guarded(broken)("photo.png")
    assert error.value.message.startswith("unexpected KeyError: 'boom'; this is a bug in cfld: the server's log")
    assert "Traceback" in capsys.readouterr().err  # for the server's log, not the page


# -- mutation fuzzing: valid files with random bytes changed are read correctly or refused as input errors ------------


def _mutate(data: bytes, rng: random.Random, alphabet: bytes | None = None) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        where = rng.randrange(len(out) + 1)
        byte = lambda: rng.choice(alphabet) if alphabet else rng.randrange(256)  # noqa: E731
        kind = rng.random()
        if kind < 0.45 and out:
            out[min(where, len(out) - 1)] = byte()
        elif kind < 0.7:
            del out[where:where + rng.randint(1, 40)]
        elif kind < 0.9:
            out[where:where] = bytes(byte() for _ in range(rng.randint(1, 16)))
        else:
            del out[where:]
    return bytes(out)


def _image_seeds() -> dict[str, bytes]:
    photo = Image.open(PHOTO).convert("RGB").resize((88, 128))
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {}
    for suffix, fmt, kwargs in ((".png", "PNG", {}), (".jpg", "JPEG", {"exif": exif}), (".gif", "GIF", {}),
                                (".tif", "TIFF", {}), (".webp", "WEBP", {}), (".bmp", "BMP", {})):
        buffer = io.BytesIO()
        photo.save(buffer, format=fmt, **kwargs)
        seeds[suffix] = buffer.getvalue()
    return seeds


@pytest.mark.parametrize("kind", ["image", "pose", "training-config", "model-config"])
def test_mutated_files_are_read_or_refused_as_input_errors(tmp_path, kind):
    """Hundreds of valid files with random damage: each is either read or an InputError; never another
    exception (which the command line would report as a bug)."""
    from cfld.checkpoint import build_models
    from cfld.errors import InputError
    from cfld.images import load_image
    from cfld.models.config import CFLDConfig
    from cfld.pose import load_pose
    from cfld.training import TrainConfig

    rng = random.Random(kind)
    yaml_text = (Path(__file__).resolve().parents[1] / "src/cfld/assets/train/synthetic-cpu.yaml").read_bytes()
    structured = b"0123456789-.,:[]{}\"' \nabcxyz!&*#"
    if kind == "image":
        trials = [(suffix, data, None) for suffix, data in _image_seeds().items() for _ in range(50)]
        read = load_image
    elif kind == "pose":
        trials = [(".json", json.dumps(_pose_dict()).encode(), structured)] * 400
        read = load_pose
    elif kind == "training-config":
        trials = [(".yaml", yaml_text, structured)] * 400
        read = lambda path: TrainConfig.load(path).to_json()  # noqa: E731
    else:
        trials = [(".json", CFLDConfig.preset("tiny").to_json().encode(), structured)] * 150
        read = lambda path: build_models(CFLDConfig.from_json(path), path, materialize=False)  # noqa: E731
    outcomes = {"read": 0, "refused": 0}
    for i, (suffix, seed, alphabet) in enumerate(trials):
        path = tmp_path / f"case{i}{suffix}"
        path.write_bytes(_mutate(seed, rng, alphabet))
        try:
            read(path)
            outcomes["read"] += 1
        except InputError as error:
            assert "\n" not in str(error)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes  # the damage was real
