"""ProductQuantizer (equss/model/quantize.py) vs a plain per-codebook loop of the same semantics.

    python benchmarks/bench_pq.py [--quick] [--device cuda]

The reference below is written the way the official EQUSS code runs it (one ``Codebook``
module per m, ``torch.chunk`` on channels): normalise the chunk, nearest normalised
codeword, raw codeword out, MSE codebook/commitment losses, straight-through.  Both are
timed on a (16, 1024, 32, 32) input in training mode:

* fwd+bwd: forward, ``loss = mean(quantized^2) + pq_loss``, backward (the training cost);
* fwd: the same forward with autograd recording, no backward;
* encode: codes only, under ``no_grad`` (``ProductQuantizer.encode``; eval / analysis).

The two must agree (codes identical, losses to 1e-5) before anything is timed.
Target: fwd+bwd ratio >= 3x at M=32, K=256.  When it is missed, torch.profiler's top
operators of the batched implementation are written to the JSON.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import benchlib as bl
from equss.model.quantize import ProductQuantizer

TARGET = 3.0


# ---------------------------------------------------------------------------- reference
def loop_pq(x: torch.Tensor, codebooks: torch.Tensor, book: float = 1.0, beta: float = 0.25):
    """Per-codebook loop (official ``ProductQuantizerWrapper`` + ``Codebook``, vq_type param, l2)."""
    m = codebooks.shape[0]
    outs, codes, cb_loss, cm_loss = [], [], 0.0, 0.0
    for i, z in enumerate(torch.chunk(x, m, dim=1)):
        b, d, h, w = z.shape
        z = z.permute(0, 2, 3, 1).reshape(-1, d)
        z_norm = F.normalize(z, dim=1)
        e = codebooks[i]
        e_norm = F.normalize(e, dim=1)
        dist = (z_norm.pow(2).sum(1, keepdim=True) + e_norm.pow(2).sum(1)
                - 2 * z_norm @ e_norm.t())
        idx = dist.argmin(dim=1)
        z_q = F.embedding(idx, e)                         # raw codeword
        cb_loss = cb_loss + F.mse_loss(z_q, z_norm.detach())
        cm_loss = cm_loss + F.mse_loss(z_norm, z_q.detach())
        z_q = z_norm + (z_q - z_norm).detach()            # straight-through
        outs.append(z_q.reshape(b, h, w, d).permute(0, 3, 1, 2))
        codes.append(idx.reshape(b, h, w))
    cb_loss, cm_loss = cb_loss / m, cm_loss / m
    return torch.cat(outs, 1), torch.stack(codes, 1), book * cb_loss + beta * cm_loss


@torch.no_grad()
def loop_encode(x: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    codes = []
    for i, z in enumerate(torch.chunk(x, codebooks.shape[0], dim=1)):
        b, d, h, w = z.shape
        z_norm = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), dim=1)
        e_norm = F.normalize(codebooks[i], dim=1)
        dist = z_norm.pow(2).sum(1, keepdim=True) + e_norm.pow(2).sum(1) - 2 * z_norm @ e_norm.t()
        codes.append(dist.argmin(dim=1).reshape(b, h, w))
    return torch.stack(codes, 1)


# ---------------------------------------------------------------------------- one configuration
def bench_config(m: int, k: int, args, profile: bool) -> dict:
    dev = args.device
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(args.batch, args.dim, args.size, args.size, generator=gen).to(dev)
    pq = ProductQuantizer(args.dim, m, k).to(dev).train()
    pq.reset_parameters(generator=torch.Generator().manual_seed(1)) if dev == "cpu" else pq.reset_parameters()
    cb = torch.nn.Parameter(pq.codebooks.detach().clone())
    x = x0.clone().requires_grad_(True)

    # correctness first: same codes, same losses, same input gradient
    # (on CUDA, batched and per-codebook matmuls round differently, so a near-tie can
    # pick the other codeword: there we require >= 99.9 % equal codes)
    out = pq(x)
    q_ref, codes_ref, loss_ref = loop_pq(x, cb)
    agree = (out.codes == codes_ref).float().mean().item()
    exact = dev == "cpu"
    assert agree == 1.0 if exact else agree >= 0.999, f"codes differ between ProductQuantizer and the loop ({agree:.5f})"
    assert torch.allclose(out.loss, loss_ref, rtol=1e-4 if exact else 1e-3, atol=1e-6), (out.loss.item(), loss_ref.item())
    if exact:
        assert torch.allclose(out.quantized, q_ref, atol=1e-5)
        assert torch.equal(pq.encode(x0), loop_encode(x0, cb))
    del out, q_ref, codes_ref, loss_ref

    def fwd_bwd_pq():
        x.grad = pq.codebooks.grad = None
        o = pq(x)
        (o.quantized.square().mean() + o.loss).backward()

    def fwd_bwd_loop():
        x.grad = cb.grad = None
        q, _, loss = loop_pq(x, cb)
        (q.square().mean() + loss).backward()

    def fwd_pq():
        pq(x)

    def fwd_loop():
        loop_pq(x, cb)

    def enc_pq():
        pq.encode(x0)

    def enc_loop():
        loop_encode(x0, cb)

    row = {"M": m, "K": k}
    for name, ours, ref in (("fwd+bwd", fwd_bwd_pq, fwd_bwd_loop), ("fwd", fwd_pq, fwd_loop),
                            ("encode", enc_pq, enc_loop)):
        t_ours = bl.time_it(ours, args.repeats, args.warmup, dev)
        t_ref = bl.time_it(ref, args.repeats, args.warmup, dev)
        row[f"{name} pq ms"] = t_ours["median_ms"]
        row[f"{name} loop ms"] = t_ref["median_ms"]
        row[f"{name} ratio"] = t_ref["median_ms"] / t_ours["median_ms"]
    if profile:
        row["profile"] = profile_top(fwd_bwd_pq, dev)
    return row


def profile_top(fn, device, top: int = 10) -> list[dict]:
    """Top operators by self time (CPU, or CUDA when on a GPU) of one fwd+bwd call."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    fn()
    with profile(activities=acts) as prof:
        fn()
        bl.sync(device)
    key = "self_device_time_total" if torch.device(device).type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in events) or 1
    return [{"op": e.key, "self_ms": getattr(e, key, 0) / 1e3, "share": getattr(e, key, 0) / total,
             "calls": e.count} for e in events[:top]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dim", type=int, default=1024, help="d_E")
    p.add_argument("--size", type=int, default=32, help="feature map side")
    p.add_argument("--M", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--K", type=int, nargs="+", default=[32, 256])
    p.add_argument("--profile", action="store_true", help="always profile, not only when the target is missed")
    args = p.parse_args()
    bl.check_device(args.device)
    if args.quick:
        args.M, args.K = [32], [256]
        args.repeats = args.repeats or 2
    args.repeats = args.repeats or 5

    rows = []
    for m in args.M:
        for k in args.K:
            print(f"M={m} K={k} ...", flush=True)
            rows.append(bench_config(m, k, args, profile=args.profile))
    cols = ["M", "K", "fwd+bwd pq ms", "fwd+bwd loop ms", "fwd+bwd ratio", "fwd pq ms", "fwd loop ms",
            "fwd ratio", "encode pq ms", "encode loop ms", "encode ratio"]
    print()
    bl.table(rows, cols, f"ProductQuantizer vs per-codebook loop, input {args.batch}x{args.dim}x{args.size}x{args.size}, "
                         f"{args.device}, median of {args.repeats} (ms)")

    main_row = next((r for r in rows if (r["M"], r["K"]) == (32, 256)), rows[0])
    met = main_row["fwd+bwd ratio"] >= TARGET
    note = ""
    if not met and "profile" not in main_row:
        print("\ntarget missed: profiling the batched fwd+bwd ...")
        main_row["profile"] = bench_config(main_row["M"], main_row["K"],
                                           argparse.Namespace(**{**vars(args), "repeats": 1, "warmup": 0}),
                                           profile=True)["profile"]
    if "profile" in main_row:
        bl.table(main_row["profile"], ["op", "self_ms", "share", "calls"],
                 f"\ntop operators, ProductQuantizer fwd+bwd at M={main_row['M']} K={main_row['K']}")
        top = ", ".join(f"{e['op']} {e['share']:.0%}" for e in main_row["profile"][:4])
        note = f"fwd+bwd ratio {main_row['fwd+bwd ratio']:.2f}x vs target {TARGET}x; dominant ops: {top}"
        print("\n" + note)
    heads = [
        bl.headline(f"PQ fwd+bwd speed-up vs loop (M={main_row['M']},K={main_row['K']})",
                    round(main_row["fwd+bwd ratio"], 2), "x", f">= {TARGET}x", met),
        bl.headline("PQ fwd+bwd time", round(main_row["fwd+bwd pq ms"], 1), "ms/iter"),
        bl.headline("PQ forward-only speed-up", round(main_row["fwd ratio"], 2), "x"),
        bl.headline("PQ encode-only speed-up", round(main_row["encode ratio"], 2), "x"),
    ]
    bl.write_result("bench_pq", {"quick": args.quick, "machine": bl.machine(args.device),
                                 "args": {k: v for k, v in vars(args).items() if k != "child"},
                                 "headline": heads, "rows": rows, "note": note}, args.out_dir)


if __name__ == "__main__":
    main()
