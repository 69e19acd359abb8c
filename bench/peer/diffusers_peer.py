"""The diffusers peer: a long-lived process that loads a diffusers folder into FluxPipeline or
StableDiffusionPipeline on CPU and generates one image per request, from given initial latents,
so that bench/ can time what a Python user would run on the same weights and the same noise.

Protocol (bench/peer/diffusers.mjs is the other end): one JSON object per line.
  argv: --model-dir DIR --kind flux|sd --dtype float32|bfloat16 --threads N
  out:  {"type": "ready", "versions": {...}, "threads": N}
        or {"type": "error", "code": "PEER_UNAVAILABLE", "missing": "torch", "message": ...}, exit 3
  in:   {"id": n, "op": "generate", "prompt": ..., "width": ..., "height": ..., "steps": ...,
         "guidance": ..., "seed": ..., "latents": base64 of little-endian float32 NCHW,
         "latentsShape": [1, C, h, w], "maxSequenceLength": ..., "negativePrompt": ...,
         "returnImage": bool}
  out:  {"id": n, "ok": true, "ms": ..., "stages": {"encode": ..., "denoise": ..., "decode": ...},
         "image": base64 float32 HWC in [0, 1], "imageShape": [H, W, 3]}
        or {"id": n, "ok": false, "error": ...}
  in:   {"op": "close"} (or end of input): exit 0
Only protocol lines go to the real stdout: everything else (warnings, progress bars, C-level
prints) is sent to stderr, which the Node side forwards.
"""

import argparse
import base64
import json
import os
import sys
import time
import traceback

# The protocol keeps its own handle on stdout; fd 1 then points at stderr, so no library print
# (Python or C) can corrupt a protocol line.
_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def send(obj):
    _proto.write(json.dumps(obj, separators=(",", ":")) + "\n")
    _proto.flush()


def unavailable(missing, exc):
    send({"type": "error", "code": "PEER_UNAVAILABLE", "missing": missing,
          "message": f"cannot import {missing} in {sys.executable}: {type(exc).__name__}: {exc}"})
    sys.exit(3)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", required=True)
    p.add_argument("--kind", choices=["flux", "sd"], required=True)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


args = parse_args()
# a local folder only: never reach the Hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

try:
    import numpy as np
except Exception as e:  # noqa: BLE001 - any import failure means the peer cannot run
    unavailable("numpy", e)
try:
    import torch
except Exception as e:  # noqa: BLE001
    unavailable("torch", e)
try:
    import transformers
except Exception as e:  # noqa: BLE001
    unavailable("transformers", e)
try:
    import diffusers
    from diffusers import FluxPipeline, StableDiffusionPipeline
except Exception as e:  # noqa: BLE001
    unavailable("diffusers", e)

if args.threads > 0:
    torch.set_num_threads(args.threads)
# inter-op parallelism would compete with the intra-op pool for the same cores
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass  # already set (only allowed once per process)

DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]


def load():
    cls = FluxPipeline if args.kind == "flux" else StableDiffusionPipeline
    extra = {} if args.kind == "flux" else {"safety_checker": None, "requires_safety_checker": False}
    pipe = cls.from_pretrained(args.model_dir, torch_dtype=DTYPE, local_files_only=True, **extra)
    pipe.to("cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def decode_array(b64, shape):
    a = np.frombuffer(base64.b64decode(b64), dtype="<f4")
    if a.size != int(np.prod(shape)):
        raise ValueError(f"latents: {a.size} values for shape {shape}")
    return torch.from_numpy(a.copy()).reshape(shape)


def encode_image(image):
    """[1, 3, H, W] in [0, 1] -> base64 float32 HWC, and its shape."""
    hwc = image[0].permute(1, 2, 0).to(torch.float32).contiguous().numpy().astype("<f4")
    return base64.b64encode(hwc.tobytes()).decode("ascii"), list(hwc.shape)


def generate_flux(pipe, req, latents, generator):
    width, height = req["width"], req["height"]
    msl = req.get("maxSequenceLength") or 512
    t0 = time.perf_counter()
    prompt_embeds, pooled, _ = pipe.encode_prompt(
        prompt=req["prompt"], prompt_2=None, device=pipe._execution_device,
        num_images_per_prompt=1, max_sequence_length=msl)
    t1 = time.perf_counter()
    b, c, h, w = latents.shape
    packed = FluxPipeline._pack_latents(latents.to(DTYPE), b, c, h, w)
    out = pipe(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled, latents=packed,
               width=width, height=height, num_inference_steps=req["steps"],
               guidance_scale=req.get("guidance", 3.5), max_sequence_length=msl,
               generator=generator, output_type="latent", return_dict=False)[0]
    t2 = time.perf_counter()
    # FluxPipeline's own decode (its __call__ with output_type != "latent")
    z = FluxPipeline._unpack_latents(out, height, width, pipe.vae_scale_factor)
    z = z / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    image = pipe.vae.decode(z, return_dict=False)[0]
    image = pipe.image_processor.postprocess(image, output_type="pt")
    t3 = time.perf_counter()
    return image, (t0, t1, t2, t3)


def generate_sd(pipe, req, latents, generator):
    guidance = req.get("guidance", 7.5)
    cfg = guidance > 1
    t0 = time.perf_counter()
    prompt_embeds, negative_embeds = pipe.encode_prompt(
        req["prompt"], pipe._execution_device, 1, cfg, negative_prompt=req.get("negativePrompt") or "")
    t1 = time.perf_counter()
    out = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds if cfg else None,
               latents=latents.to(DTYPE), width=req["width"], height=req["height"],
               num_inference_steps=req["steps"], guidance_scale=guidance, generator=generator,
               output_type="latent", return_dict=False)[0]
    t2 = time.perf_counter()
    # StableDiffusionPipeline's own decode (no safety checker: do_denormalize everywhere)
    image = pipe.vae.decode(out / pipe.vae.config.scaling_factor, return_dict=False, generator=generator)[0]
    image = pipe.image_processor.postprocess(image, output_type="pt", do_denormalize=[True])
    t3 = time.perf_counter()
    return image, (t0, t1, t2, t3)


def handle(pipe, req):
    latents = decode_array(req["latents"], req["latentsShape"])
    generator = torch.Generator("cpu").manual_seed(int(req.get("seed") or 0))
    run = generate_flux if args.kind == "flux" else generate_sd
    with torch.inference_mode():
        image, (t0, t1, t2, t3) = run(pipe, req, latents, generator)
    res = {"id": req.get("id"), "ok": True, "ms": (t3 - t0) * 1e3,
           "stages": {"encode": (t1 - t0) * 1e3, "denoise": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}}
    if req.get("returnImage"):
        res["image"], res["imageShape"] = encode_image(image)
    return res


def main():
    try:
        pipe = load()
    except Exception as e:  # noqa: BLE001 - reported to the Node side, which throws
        send({"type": "error", "code": "PEER_LOAD_FAILED",
              "message": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
        sys.exit(4)
    send({"type": "ready", "threads": torch.get_num_threads(), "dtype": args.dtype,
          "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                       "diffusers": diffusers.__version__, "transformers": transformers.__version__},
          "scheduler": type(pipe.scheduler).__name__})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "close":
            break
        try:
            send(handle(pipe, req))
        except Exception as e:  # noqa: BLE001 - one bad request does not end the peer
            send({"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}",
                  "trace": traceback.format_exc()})


main()
