#!/usr/bin/env python3
"""Mask2Former per frame: dinoseg (Rust) vs transformers (Python), forward and post-processing, on the same weights.

transformers' Mask2FormerForUniversalSegmentation with a DINOv3 ConvNeXt-T backbone (hidden sizes 96-768, depths
3/3/9/3, all four stages out), its default head (hidden 256, 6 deformable encoder layers, 10 decoder layers),
100 queries, 133 classes, random weights, saved with save_pretrained; a 640x640 input, post-processing (semantic and
panoptic) to a 480x640 camera frame, CPU, threads fixed on both sides. `dinoseg bench-worker` keeps our model
loaded; this script interleaves one frame of ours with one of transformers' (order swapped every round) and prints
medians. transformers' post-processing is its Mask2FormerImageProcessor's (which first resizes every mask to
384x384), with our default thresholds (query threshold 0.8).

  bench/mask2former.py [--threads 2] [--rounds 5] [--device cpu] [--precision fp32] [--confident 20] [--margin 0.5]
"""
import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/backbone.py

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frame_bench import DINOSEG, KINDS, Worker, add_common_args, interleave, reference_frame, report  # noqa: E402


def make_model(tmp, args, x):
    from transformers import DINOv3ConvNextConfig, Mask2FormerConfig, Mask2FormerForUniversalSegmentation
    from transformers.utils import logging
    logging.set_verbosity_error()  # "dinov3_convnext is not a supported model": it builds and runs
    labels = {i: f"class_{i}" for i in range(args.classes)}
    backbone = DINOv3ConvNextConfig(hidden_sizes=[int(v) for v in args.hidden_sizes.split(",")],
                                    depths=[int(v) for v in args.depths.split(",")],
                                    out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, num_queries=args.queries, id2label=labels,
                            label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    m = Mask2FormerForUniversalSegmentation(cfg).eval()
    with torch.no_grad():
        # Confident, varied class predictions, as a trained model gives, so that post-processing has segments to
        # build; like a trained model, most queries predict "no object": the no-object bias is set so that only
        # the `--confident` queries with the largest class margin stay objects on this input.
        m.class_predictor.weight.normal_(0.0, 0.5)
        if args.confident < args.queries:
            m.class_predictor.weight[-1].zero_()
            m.class_predictor.bias[-1] = 0.0
            logits = m(pixel_values=x).class_queries_logits[0]
            best = logits[:, :-1].max(-1).values
            cut = best.sort(descending=True).values[args.confident - 1].item()
            m.class_predictor.bias[-1] = cut - args.margin
    d = os.path.join(tmp, "mask2former")
    m.save_pretrained(d)
    return d, m


def check_parity(tmp, model_dir, inp, ref, xd, args):
    """Both sides compute the same thing: `dinoseg forward` on the input against transformers' outputs, in the
    benchmark's precision and in float64 on the CPU (the exact answer, within float64 rounding)."""
    import copy
    from safetensors.torch import load_file
    out = os.path.join(tmp, "ours.safetensors")
    subprocess.run([DINOSEG, "forward", "--model", model_dir, "--input", inp, "--output", out, "--device",
                    args.device, "--precision", args.precision], check=True, stdout=subprocess.DEVNULL)
    ours = load_file(out)
    with torch.inference_mode():
        theirs = ref(pixel_values=xd)
        exact = copy.deepcopy(ref).cpu().double()(pixel_values=xd.cpu().double())
    lines = []
    for n in ("class_queries_logits", "masks_queries_logits"):
        e = getattr(exact, n)
        ours_err = (ours[n].double() - e).abs().max().item()
        theirs_err = (getattr(theirs, n).double().cpu() - e).abs().max().item()
        lines.append(f"{n} (max |v| {e.abs().max().item():.1f}): max abs error vs float64 dinoseg {ours_err:.1e}, "
                     f"transformers {theirs_err:.1e}")
    return "; ".join(lines)


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap, rounds=5)
    ap.add_argument("--hidden-sizes", default="96,192,384,768", help="ConvNeXt stage widths (T: 96,192,384,768)")
    ap.add_argument("--depths", default="3,3,9,3", help="ConvNeXt stage depths (T: 3,3,9,3; L: 3,3,27,3)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--confident", type=int, default=20,
                    help="queries that predict an object with confidence (the rest predict no-object)")
    ap.add_argument("--margin", type=float, default=0.5,
                    help="the least confident of them beats no-object by this logit margin")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    th, tw = (int(v) for v in args.target.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        model_dir, ref = make_model(tmp, args, x)
        inp = os.path.join(tmp, "input.safetensors")
        from safetensors.torch import save_file
        save_file({"pixel_values": x}, inp)
        worker = Worker(model_dir, inp, args)

        from transformers import Mask2FormerImageProcessorPil  # the same post-processing, without torchvision
        proc = Mask2FormerImageProcessorPil()
        ref = ref.to(args.device, KINDS[args.precision])
        xd = x.to(args.device, KINDS[args.precision])
        theirs = reference_frame(
            ref, xd, args.device,
            lambda out: proc.post_process_semantic_segmentation(out, target_sizes=[(th, tw)]),
            lambda out: proc.post_process_panoptic_segmentation(out, threshold=0.8, label_ids_to_fuse=set(),
                                                                target_sizes=[(th, tw)]))
        with torch.inference_mode():
            probs = ref(pixel_values=xd).class_queries_logits.float().softmax(-1)[0]
        kept = int(((probs.argmax(-1) != args.classes) & (probs.max(-1).values > 0.8)).sum())
        parity = check_parity(tmp, model_dir, inp, ref, xd, args)
        a, b = interleave(worker.frame, theirs, args)
        worker.close()

    report(f"Mask2Former frame, {args.device} {args.precision}, {args.threads} threads, DINOv3 ConvNeXt "
           f"{args.hidden_sizes} x {args.depths}, {args.queries} queries, {args.classes} classes, "
           f"{args.size}x{args.size} input, results at {tw}x{th}, {args.confident} confident queries (margin "
           f"{args.margin}; {kept} above the 0.8 query threshold), median of {args.rounds} interleaved rounds",
           a, b, args.json, notes=[f"outputs of the two sides: {parity}"])


if __name__ == "__main__":
    main()
