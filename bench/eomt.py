#!/usr/bin/env python3
"""EoMT per frame: dinoseg (Rust) vs transformers (Python), forward and post-processing, on the same weights.

A ViT-S-sized EoMT (hidden 384, 12 layers, 6 heads, 200 queries, 133 classes, 4 query blocks) with random
weights, a 640x640 input, post-processing (semantic and panoptic) to a 480x640 camera frame, CPU, threads fixed.
`dinoseg bench-worker` keeps our model loaded; this script interleaves one frame of ours with one of
transformers' (order swapped every round) and prints medians.

  bench/eomt.py [--threads 2] [--rounds 7] [--device cpu] [--precision fp32] [--hidden 384 --layers 12 --heads 6]
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/backbone.py

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frame_bench import DINOSEG, KINDS, Worker, add_common_args, interleave, reference_frame, report  # noqa: E402


def make_model(tmp, args, x):
    from transformers import EomtDinov3Config, EomtDinov3ForUniversalSegmentation
    labels = {i: f"class_{i}" for i in range(args.classes)}
    cfg = EomtDinov3Config(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                           intermediate_size=4 * args.hidden, num_register_tokens=4, num_queries=args.queries,
                           num_blocks=4, image_size=args.size, layer_norm_eps=1e-5, id2label=labels,
                           label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    m = EomtDinov3ForUniversalSegmentation(cfg).eval()
    with torch.no_grad():
        m.attn_mask_probs.fill_(0.0)  # published checkpoints are annealed to 0
        # Confident, varied class predictions (as a trained model gives), so that post-processing has segments to
        # build: with the default init every query is "unsure" and panoptic post-processing has nothing to do.
        m.class_predictor.weight.normal_(0.0, 0.5)
        if args.confident < args.queries:
            # Like a trained model, most queries predict "no object": raise the no-object logit so that only the
            # `--confident` queries with the largest class margin stay confident objects on this input.
            m.class_predictor.weight[-1].zero_()
            m.class_predictor.bias[-1] = 0.0
            logits = m(pixel_values=x).class_queries_logits[0]
            best = logits[:, :-1].max(-1).values
            cut = best.sort(descending=True).values[args.confident - 1].item()
            m.class_predictor.bias[-1] = cut - 0.5
    d = os.path.join(tmp, "eomt")
    m.save_pretrained(d)
    return d, m


def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap, rounds=7)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--confident", type=int, default=200,
                    help="queries that predict an object with confidence (the rest predict no-object)")
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

        from transformers import EomtImageProcessor
        proc = EomtImageProcessor()
        ref = ref.to(args.device, KINDS[args.precision])
        theirs = reference_frame(
            ref, x.to(args.device, KINDS[args.precision]), args.device,
            lambda out: proc.post_process_semantic_segmentation(out, target_sizes=[(th, tw)]),
            lambda out: proc.post_process_panoptic_segmentation(out, target_sizes=[(th, tw)]))
        a, b = interleave(worker.frame, theirs, args)
        worker.close()

    report(f"EoMT frame, {args.device} {args.precision}, {args.threads} threads, hidden {args.hidden}, "
           f"{args.layers} layers, {args.queries} queries, {args.classes} classes, {args.size}x{args.size} input, "
           f"results at {tw}x{th}, {args.confident} confident queries, median of {args.rounds} interleaved rounds",
           a, b, args.json)


if __name__ == "__main__":
    main()
