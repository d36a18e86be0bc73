#!/usr/bin/env python3
"""Projected DiT forward time of wanbatch on 1, 2, 4 and 8 H200s (issue 10).

A PROJECTION, NOT A MEASUREMENT: only 1 and 2 H200s were lent. The inputs are the one- and
two-GPU forwards measured in bench/RESULTS.md; the model splits them into compute (divided over
the ranks) and communication (bytes each rank moves / a bandwidth calibrated on the two-GPU runs).
Standard library only: python3 bench/scaling_model.py
"""

import math

MB, GB, GIB = 1e6, 1e9, 2.0**30

# ---------------------------------------------------------------------------------------------
# Measured inputs. bench/RESULTS.md, "2026-11-30 — first CUDA DiT forwards, two H200s" (kind
# nvidia-h200-x2, NCCL 2.28.3, NCCL_NVLS_ENABLE=0, wanbatch-bench, random bf16 weights, batch 1):
# median forward ms and the breakdown (GEMM, attention, communication, other) of one extra forward
# with every op synchronized. That breakdown's sum exceeds the median (per-op syncs), so only its
# shares are used: each part is share × median.
# ---------------------------------------------------------------------------------------------
MEASURED = {
    "1.3B": {
        1: dict(forward=500.0, gemm=125, attn=342, comm=0, other=44),  # fused norm + RoPE run
        2: dict(forward=271.7, gemm=62, attn=168, comm=31, other=34),
    },
    "5B": {
        1: dict(forward=892.6, gemm=340, attn=499, comm=0, other=70),  # no 2-GPU run
    },
    "A14B": {
        1: dict(forward=11112, gemm=2450, attn=8176, comm=0, other=524),
        2: dict(forward=5690, gemm=1167, attn=4067, comm=211, other=282),
    },
}
# "2026-11-30 — sharded DiT weights, two H200s": profiled communication with --shard-weights
# (Ulysses + the block gathers, joined at once) and Ulysses alone, ms (raw, not share-scaled), and
# the forward with the gathers joined at once (no prefetch).
SHARDED_2GPU = {
    "1.3B": dict(comm_total=44.7, comm_ulysses=30.9, forward=276.1, resident=271.7,
                 shard_gib=1.30),
    "A14B": dict(comm_total=311.6, comm_ulysses=210.9, forward=5719, resident=5690,
                 shard_gib=13.09),
}
# "second session": A14B, 2 GPUs, gathers prefetched a block ahead: 5 669 ms sharded = 5 669 ms
# resident (the gathers are hidden). Same session, 1 GPU resident: 10 840 ms (host shared).
A14B_PREFETCHED_2GPU = dict(sharded=5669, resident=5669, one_gpu_second_session=10840)
# /work/shared/docs/device.md, nccl-tests between 2 H200s (NVLink, NV18): all-to-all bus bandwidth
# 177 GB/s at 64 MiB per rank → 329 GB/s at 1 GiB per rank. It gives no 4- or 8-GPU figure.
NCCL_TESTS_A2A_2GPU = ((64 * 2**20, 177e9), (2**30, 329e9))
# NV18 = 18 NVLink-4 links × 25 GB/s per direction (NVIDIA's H200 figure, not in device.md): the
# per-GPU ceiling; with NVSwitch (8-GPU HGX boards) it holds for any peer count.
NVLINK_PER_GPU = 18 * 25e9
# device.md: device-to-device copy 4.24 TB/s (read + write): the rate of the permutes that put
# each exchanged tensor into the send buffer and take it out of the receive buffer.
COPY_BANDWIDTH = 4.24e12

# The variants (wan-spec.md "Variants") at the benchmarked sizes. Tokens: latent frames ×
# (H/16) × (W/16); Wan2.1 VAE ×4 time ×8 space, Wan2.2 VAE ×4 ×16, patch (1, 2, 2).
MODELS = {
    "1.3B": dict(name="Wan2.1-1.3B 832×480×81", dim=1536, ffn=8960, heads=12, layers=30,
                 in_ch=16, out_ch=16, tokens=21 * 30 * 52),
    "5B": dict(name="Wan2.2-TI2V-5B 1280×704×121", dim=3072, ffn=14336, heads=24, layers=30,
               in_ch=48, out_ch=48, tokens=31 * 22 * 40),
    "A14B": dict(name="Wan2.2-A14B expert 1280×720×81", dim=5120, ffn=13824, heads=40, layers=40,
                 in_ch=16, out_ch=16, tokens=21 * 45 * 80),
}
PATCH = 1 * 2 * 2
TEXT_DIM, FREQ_DIM = 4096, 256
GPU_COUNTS = (1, 2, 4, 8)


def scaled_parts(run):
    """The breakdown as ms of the median forward (share × median)."""
    total = run["gemm"] + run["attn"] + run["comm"] + run["other"]
    return {k: run[k] * run["forward"] / total for k in ("gemm", "attn", "comm", "other")}


# ---------------------------------------------------------------------------------------------
# What moves (parallel/ulysses.cpp, model/wan/dit.cpp, parallel/weight_stream.cpp).
# ---------------------------------------------------------------------------------------------
def padded(tokens, sp):
    return -(-tokens // sp) * sp  # parallel/topology.cpp padded_length


def ulysses_traffic(m, sp):
    """(bytes each rank sends per forward, collective calls, bytes of one rank's q tensor).

    Per block: q, k, v sequence → heads and the attention output heads → sequence, each a bf16
    [L/sp, dim] tensor per rank of which (sp−1)/sp goes to other ranks. At the end the head's fp32
    output [L/sp, patch·out_ch] is all-gathered: each rank receives (sp−1)/sp of the whole."""
    if sp == 1:
        return 0.0, 0, 0.0
    local = padded(m["tokens"], sp) // sp
    tensor = local * m["dim"] * 2
    a2a = 4 * m["layers"] * tensor * (sp - 1) / sp
    head = local * PATCH * m["out_ch"] * 4 * (sp - 1)
    return a2a + head, 4 * m["layers"] + 1, tensor


def block_weight_bytes(m):
    """One block: bf16 GEMM weights + biases (self q,k,v,o; cross q,k,v,o; FFN), fp32 norms and
    modulation (norm_q, norm_k twice, norm3 weight + bias, modulation [6, dim])."""
    d, f = m["dim"], m["ffn"]
    bf16 = 8 * (d * d + d) + (d * f + f) + (f * d + d)
    fp32 = (2 + 2 + 2 + 6) * d
    return bf16 * 2 + fp32 * 4


def other_weight_bytes(m):
    """Replicated on every GPU: text embedding (bf16); time embedding, time projection, head,
    head modulation, patch embedding (fp32)."""
    d = m["dim"]
    bf16 = TEXT_DIM * d + d + d * d + d
    fp32 = (FREQ_DIM * d + d + d * d + d + d * 6 * d + 6 * d + d * PATCH * m["out_ch"]
            + PATCH * m["out_ch"] + 2 * d + m["in_ch"] * PATCH * d + d)
    return bf16 * 2 + fp32 * 4


def weights_gib(m, sp, sharded):
    blocks = block_weight_bytes(m) * m["layers"]
    if not sharded or sp == 1:
        return (blocks + other_weight_bytes(m)) / GIB
    # this rank's shards + the two gather buffers (two whole blocks) + the replicated rest
    return (blocks / sp + 2 * block_weight_bytes(m) + other_weight_bytes(m)) / GIB


def fit_latency_bandwidth(points):
    """t = calls·alpha + bytes/beta through two (calls, bytes, ms) points."""
    (c1, b1, t1), (c2, b2, t2) = points
    inv_beta = (t2 - t1 * c2 / c1) / (b2 - b1 * c2 / c1)  # ms per byte
    alpha = (t1 - b1 * inv_beta) / c1
    assert alpha >= 0 and inv_beta > 0, "calibration gave a negative latency or bandwidth"
    return alpha, 1e3 / inv_beta  # ms per call, bytes per second


# ---------------------------------------------------------------------------------------------
# Calibration on the two-GPU runs.
# ---------------------------------------------------------------------------------------------
TWO_GPU = ("1.3B", "A14B")


def two_gpu_point(key, ms):
    """(collective calls, bytes each rank sends, ms) of one 2-GPU forward."""
    sent, calls, _ = ulysses_traffic(MODELS[key], 2)
    return calls, sent, ms


# All-to-all (+ the head's all-gather): the measured communication ms against the bytes sent.
A2A_ALPHA, A2A_BETA = fit_latency_bandwidth(
    [two_gpu_point(k, scaled_parts(MEASURED[k][2])["comm"]) for k in TWO_GPU])
# End to end: everything Ulysses adds beyond an ideal halving (T2 − T1/2: the exchanges, the
# permutes around them, any skew between ranks), against the same bytes. Uses medians only.
E2E_ALPHA, E2E_BETA = fit_latency_bandwidth(
    [two_gpu_point(k, MEASURED[k][2]["forward"] - MEASURED[k][1]["forward"] / 2)
     for k in TWO_GPU])
# Block weight gathers: the extra profiled communication with --shard-weights, per block.
GATHER_ALPHA, GATHER_BETA = fit_latency_bandwidth(
    [(MODELS[k]["layers"], MODELS[k]["layers"] * block_weight_bytes(MODELS[k]) / 2,
      SHARDED_2GPU[k]["comm_total"] - SHARDED_2GPU[k]["comm_ulysses"]) for k in TWO_GPU])


def nccl_tests_bandwidth(tensor_bytes):
    """device.md's 2-GPU all-to-all bus bandwidth, log-interpolated at this per-rank size."""
    (s0, b0), (s1, b1) = NCCL_TESTS_A2A_2GPU
    x = min(max((math.log(tensor_bytes) - math.log(s0)) / (math.log(s1) - math.log(s0)), 0), 1)
    return b0 + x * (b1 - b0)


# name → (ms per collective call, bandwidth at a per-rank tensor size, permutes counted apart)
SCENARIOS = {
    "calibrated": (A2A_ALPHA, lambda size: A2A_BETA, True),
    "end-to-end fit": (E2E_ALPHA, lambda size: E2E_BETA, False),
    "calibrated, half bandwidth": (A2A_ALPHA, lambda size: A2A_BETA / 2, True),
    "nccl-tests 2-GPU curve": (0.0, nccl_tests_bandwidth, True),
    "NVLink ceiling": (0.0, lambda size: NVLINK_PER_GPU, True),
}


def project(key, sp, scenario="calibrated", one_gpu_ms=None):
    """One forward of one sample on an sp-rank Ulysses group: a dict of ms and bytes.
    one_gpu_ms: another one-GPU forward, its parts in the measured shares."""
    m = MODELS[key]
    one = scaled_parts(MEASURED[key][1])
    if one_gpu_ms:
        one = {k: v * one_gpu_ms / MEASURED[key][1]["forward"] for k, v in one.items()}
    pad = padded(m["tokens"], sp) / m["tokens"]
    # Each rank: GEMMs and element-wise work on L/sp tokens; attention of H/sp heads over the
    # whole (padded) sequence.
    compute = (one["gemm"] + one["other"]) * pad / sp + one["attn"] * pad * pad / sp
    sent, calls, tensor = ulysses_traffic(m, sp)
    alpha, bandwidth, permutes = SCENARIOS[scenario]
    comm = calls * alpha + (sent / bandwidth(tensor) * 1e3 if sent else 0.0)
    # Two permutes per exchange (into the send buffer, out of the receive buffer), each a read
    # and a write of this rank's tensor.
    reshuffle = 4 * m["layers"] * 4 * tensor / COPY_BANDWIDTH * 1e3 if permutes else 0.0
    forward = compute + comm + reshuffle
    # Sharded weights: each block's gather (receive (sp−1)/sp of it) runs a block ahead on its
    # own stream; only what exceeds a block's compute shows. "not_hidden" adds every gather.
    gather_block = 0.0
    if sp > 1:
        gather_block = GATHER_ALPHA + block_weight_bytes(m) * (sp - 1) / sp / GATHER_BETA * 1e3
    compute_block = (compute + reshuffle) / m["layers"]
    exposed = m["layers"] * max(0.0, gather_block - compute_block)
    return dict(sent=sent, comm=comm, compute=compute, reshuffle=reshuffle, forward=forward,
                sharded=forward + exposed, not_hidden=forward + m["layers"] * gather_block)


def layouts(key, n):
    """(dp, sp) splits of n GPUs; sp must divide the heads."""
    return [(n // sp, sp) for sp in sorted({n, n // 2, n // 4, n // 8, 1}, reverse=True)
            if sp >= 1 and n % sp == 0 and MODELS[key]["heads"] % sp == 0]


def fmt(x, digits=0):
    return f"{x:,.{digits}f}".replace(",", " ")


def check_two_gpu():
    print("## Check: the model against the measured 2-GPU runs\n")
    print(f"Calibrated: all-to-all {A2A_ALPHA * 1e3:.0f} µs per call + bytes / "
          f"{A2A_BETA / 1e9:.0f} GB/s (end-to-end fit: {E2E_ALPHA * 1e3:.0f} µs + bytes / "
          f"{E2E_BETA / 1e9:.0f} GB/s); weight gathers {GATHER_ALPHA * 1e3:.0f} µs "
          f"per block + bytes / {GATHER_BETA / 1e9:.0f} GB/s.\n")
    print("| model | measured 2-GPU ms | modelled ms | error | measured comm ms (share) | "
          "modelled | measured other − ½ one-GPU other, ms | modelled permutes | "
          "measured speed-up | modelled | shard GiB measured / modelled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in TWO_GPU:
        p, two = project(key, 2), MEASURED[key][2]
        comm = scaled_parts(two)["comm"]
        excess = scaled_parts(two)["other"] - scaled_parts(MEASURED[key][1])["other"] / 2
        shard = block_weight_bytes(MODELS[key]) * MODELS[key]["layers"] / 2 / GIB
        print(f"| {MODELS[key]['name']} | {fmt(two['forward'], 1)} | {fmt(p['forward'], 1)} | "
              f"{100 * (p['forward'] / two['forward'] - 1):+.1f} % | {comm:.1f} | "
              f"{p['comm']:.1f} | {excess:.1f} | {p['reshuffle']:.1f} | "
              f"{MEASURED[key][1]['forward'] / two['forward']:.2f}× | "
              f"{MEASURED[key][1]['forward'] / p['forward']:.2f}× | "
              f"{SHARDED_2GPU[key]['shard_gib']:.2f} / {shard:.2f} |")
    print("\nThe communication term is fitted to these two runs (two points, two parameters), so "
          "it matches by construction; the error is the compute split (one-GPU GEMM, attention "
          "and element-wise time / 2) and the permutes. The end-to-end fit matches both "
          "forwards exactly, also by construction.\n")


def model_table(key):
    m = MODELS[key]
    t1 = MEASURED[key][1]["forward"]
    print(f"## {m['name']} ({m['tokens']} tokens, {m['heads']} heads), calibrated bandwidth\n")
    print("| GPUs | dp × sp | comm GB sent per rank | comm ms | compute ms | reshuffle ms | "
          "forward ms | latency speed-up | throughput speed-up | comm share | "
          "forward ms sharded (gathers hidden / not) | weights GiB per GPU resident / sharded |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in GPU_COUNTS:
        for dp, sp in layouts(key, n):
            p = project(key, sp)
            sharded = (f"{fmt(p['sharded'])} / {fmt(p['not_hidden'])}" if sp > 1 else "—")
            print(f"| {n} | {dp} × {sp} | {p['sent'] / GB:.2f} | {p['comm']:.1f} | "
                  f"{fmt(p['compute'], 1)} | {p['reshuffle']:.1f} | {fmt(p['forward'], 1)} | "
                  f"{t1 / p['forward']:.2f}× | {dp * t1 / p['forward']:.2f}× | "
                  f"{100 * p['comm'] / p['forward']:.1f} % | {sharded} | "
                  f"{weights_gib(m, sp, False):.2f} / "
                  f"{weights_gib(m, sp, True) if sp > 1 else weights_gib(m, 1, False):.2f} |")
    missing = [sp for sp in (2, 4, 8) if m["heads"] % sp]
    if missing:
        print(f"\nsp {', '.join(map(str, missing))}: impossible ({m['heads']} heads do not "
              f"divide); on 8 GPUs only dp × sp mixes.")
    print()


def scenario_table():
    print("## Latency speed-up (Ulysses, sp = GPUs) under other all-to-all bandwidths\n")
    names = list(SCENARIOS)
    print("| model | GPUs | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for key in MODELS:
        t1 = MEASURED[key][1]["forward"]
        for sp in (2, 4, 8):
            if MODELS[key]["heads"] % sp:
                continue
            cells = [f"{t1 / project(key, sp, s)['forward']:.2f}×" for s in names]
            print(f"| {MODELS[key]['name']} | {sp} | " + " | ".join(cells) + " |")
    print("\nScenarios: calibrated = the fit above held at 4 and 8 GPUs; half bandwidth = the "
          "same with the bandwidth halved (all-to-all over more, smaller peer messages); "
          "nccl-tests 2-GPU curve = device.md's all-to-all bus bandwidth at the per-rank tensor "
          "size (177 GB/s below 64 MiB), no latency: what the collective reached alone; NVLink "
          "ceiling = 450 GB/s per GPU per direction (NV18 × 25 GB/s, NVIDIA's figure), no "
          "latency: unreachable, an upper bound.\n")


def break_even_bandwidth(key, sp, speed_up):
    """The all-to-all bandwidth (calibrated latency kept) at which the model gives speed_up."""
    p = project(key, sp)
    budget = MEASURED[key][1]["forward"] / speed_up - p["compute"] - p["reshuffle"]
    budget -= ulysses_traffic(MODELS[key], sp)[1] * A2A_ALPHA
    return p["sent"] / (budget * 1e-3) if budget > 0 else float("inf")


def targets():
    print("## Targets (A14B 720p, Ulysses)\n")
    alt = A14B_PREFETCHED_2GPU["one_gpu_second_session"]
    for sp, goal in ((4, 3.7), (8, 7.0)):
        t1 = MEASURED["A14B"][1]["forward"]
        cells = "; ".join(f"{s} {t1 / project('A14B', sp, s)['forward']:.2f}×" for s in SCENARIOS)
        from_alt = alt / project("A14B", sp, one_gpu_ms=alt)["forward"]
        print(f"- {sp} GPUs (target ≥ {goal}×): {cells}; from the 10 840 ms one-GPU run "
              f"instead: {from_alt:.2f}×. Reached while the all-to-all keeps ≥ "
              f"{break_even_bandwidth('A14B', sp, goal) / 1e9:.0f} GB/s per rank "
              f"(2-GPU calibration: {A2A_BETA / 1e9:.0f} GB/s).")
    print()


ASSUMPTIONS = """## Assumptions (what could make reality differ)

- Compute per rank = the one-GPU GEMM, attention and element-wise time / sp (attention: all
  tokens, heads / sp; padding to a multiple of sp, none at these sizes). At 2 GPUs this split
  over-predicts by 2–5 % (check above), so it is not optimistic there; smaller per-rank GEMMs
  and fewer attention tiles at 4–8 ranks (wave quantization) could cost a few %.
- Ulysses is not overlapped with compute (the exchanges run on the compute stream): comm adds.
- The all-to-all keeps the 2-GPU calibrated bandwidth per rank at 4 and 8 ranks and the same
  per-call latency. device.md has no 4- or 8-GPU NCCL figures; on an NVSwitch board each GPU
  keeps its 18 links, but each rank's tensor splits into sp − 1 smaller peer messages (A14B at
  sp 8: 12 MB per peer), where NCCL is less efficient: the "half bandwidth" column shows the
  cost if the bandwidth halves.
- The permutes around each exchange are modelled at the device copy rate (4 × the tensor per
  exchange at 4.24 TB/s); the measured 2-GPU "other" beyond half the one-GPU one was 9.8 and
  19.1 ms (1.3B, A14B) against 5.7 and 58.4 modelled: rough, but small beside the forward.
- The profiled communication ms (every op synchronized, shares of the median) include skew and
  synchronization; the "end-to-end fit" instead charges all of T2 − T1/2 to the exchanges.
- Sharded weights: each block's gather (receiving (sp − 1)/sp of it) runs a block ahead on its
  own stream and is hidden when shorter than a block's compute (true in every row above); it
  shares the NVLinks with the all-to-alls and its NCCL kernels take SMs (no cost measured at
  2 GPUs). "not hidden" adds every gather: an upper bound.
- dp groups are independent (separate items, or the two CFG halves of a step): the throughput
  speed-up assumes enough work for every group and no contention between groups.
- Weight memory: one expert's block and replicated weights only (bf16 GEMMs, fp32 norms,
  modulation, time embedding and head), plus two gather buffers when sharded; activations,
  the text encoder, the VAE and A14B's second expert are not counted.
"""


def main():
    print("# Projected wanbatch DiT forward on 1, 2, 4, 8 H200s (model, not measured)\n")
    check_two_gpu()
    for key in MODELS:
        model_table(key)
    scenario_table()
    targets()
    print(ASSUMPTIONS)


if __name__ == "__main__":
    main()
