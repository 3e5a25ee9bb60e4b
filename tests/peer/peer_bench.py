"""circuit-tracer and circuitscope-cli trace on the same model, transcoders and prompts, timed
in one run (scripts/peer-bench). For each prompt length and feature cap: circuit-tracer's
`attribute` (nnsight backend; the best of `repeats` runs after a warm-up, model already
loaded) against `circuitscope-cli trace --json`'s own trace_ms (the best of `repeats`; the CLI
loads the model each run, which trace_ms leaves out, as the circuit-tracer time leaves out its
load), and the ratio. Both graphs' node counts are printed so that the same graph is compared.

usage: peer_bench.py CLI WORKDIR DEVICE [REPEATS]
"""
import json
import subprocess
import sys
import time

import torch

from circuit_tracer import ReplacementModel, attribute

import peer_ct_setup

cli, work, device = sys.argv[1], sys.argv[2], sys.argv[3]
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
d_model, n_layers, n_features, d_mlp = 256, 4, 4096, 1024
tok, tset, folder = peer_ct_setup.make(work, "llama", d_model=d_model, n_layers=n_layers, n_features=n_features,
                                       d_mlp=d_mlp, vocab=400, threshold=2.3)
print(f"model: llama, d_model {d_model}, {n_layers} layers, d_mlp {d_mlp}; PLT {n_features} features per layer "
      f"(JumpReLU); device {device}; torch {torch.__version__}, {torch.get_num_threads()} threads")
tset = tset.to(torch.device(device))
rm = ReplacementModel.from_pretrained_and_transcoders(work, tset, backend="nnsight", device=torch.device(device),
                                                      dtype=torch.float32)
stream = [1] + tok.encode(peer_ct_setup.TEXT * 4).ids

def ours(ids, cap):
    best, summary = float("inf"), None
    for _ in range(repeats):
        run = subprocess.run([cli, "--device", device, "trace", work, "--ids", ",".join(map(str, ids)), "--transcoder",
                              folder, "--out", f"{work}/bench.json", "--max-n-logits", "10", "--batch-size", "256",
                              "--max-feature-nodes", str(cap), "--json"], capture_output=True, text=True, check=True)
        summary = json.loads(run.stdout)
        best = min(best, summary["trace_ms"])
    return best, summary

def theirs(ids, cap):
    kwargs = dict(max_n_logits=10, desired_logit_prob=0.95, batch_size=256, verbose=False)
    if cap >= 0:
        kwargs["max_feature_nodes"] = cap
    attribute(torch.tensor(ids), rm, **kwargs)  # warm-up
    best, graph = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        graph = attribute(torch.tensor(ids), rm, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best, graph

print(f"{'tokens':>6} {'feature cap':>11} {'nodes (ours / c-t)':>20} {'circuitscope ms':>16} {'circuit-tracer ms':>18} {'ratio':>7}")
for n_tokens in (16, 64):
    ids = stream[:n_tokens]
    for cap in (-1, 1024):
        ms, summary = ours(ids, cap)
        ct_ms, graph = theirs(ids, cap)
        print(f"{n_tokens:>6} {('all' if cap < 0 else str(cap)):>11} "
              f"{str(summary['nodes_total']) + ' / ' + str(graph.adjacency_matrix.shape[0]):>20} "
              f"{ms:>16.1f} {ct_ms:>18.1f} {ct_ms / ms:>6.1f}x", flush=True)
