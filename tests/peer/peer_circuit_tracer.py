"""circuit-tracer beside circuitscope-cli trace, on the same inputs.

The inputs of peer_ct_setup.make: a small random model made and saved by transformers (llama,
or gemma2 with a sliding window shorter than the prompt and both soft-caps), a tokenizer made by
tokenizers, and a random JumpReLU per-layer transcoder set or cross-layer transcoder made by
circuit-tracer's own classes in its format (gemma2's reads ln2.hook_normalized and writes hook_mlp_out, as GemmaScope's). circuit-tracer 0.5's `attribute` (nnsight backend,
on the CPU) and `circuitscope-cli trace --full` trace the same token ids; the test compares the
node lists (the active features in order, with their activations), the logit targets and their
probabilities, the whole unpruned adjacency (per row, against the row's largest entry), the
replacement and completeness scores, and the nodes and edges kept by pruning at the default
thresholds; each reads the other's graph JSON (circuit-tracer's pydantic file model reads
ours, `graph import` reads what create_graph_files writes), and both files hold the same node
ids and links. Runs with the circuit-tracer venv's python (scripts/install-deps).

usage: peer_circuit_tracer.py CLI FAMILY WORKDIR [plt|clt]
"""
import json
import os
import subprocess
import sys

import torch
from safetensors import safe_open

from circuit_tracer import ReplacementModel, attribute
from circuit_tracer.graph import compute_graph_scores, prune_graph

import peer_ct_setup

cli, family, work = sys.argv[1], sys.argv[2], sys.argv[3]
clt = len(sys.argv) > 4 and sys.argv[4] == "clt"  # a cross-layer transcoder instead of a PLT
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


# --- the inputs ---------------------------------------------------------------------------
n_layers = 3
tok, tset, folder = peer_ct_setup.make(work, family, n_layers=n_layers, clt=clt)

# --- both tracers, on the same ids (BOS first: both hold that position) ----------------------
PROMPT = "Fact: Michael Jordan plays the sport of"
ids = [1] + tok.encode(PROMPT).ids
rm = ReplacementModel.from_pretrained_and_transcoders(work, tset, backend="nnsight", device=torch.device("cpu"),
                                                      dtype=torch.float32)
ct = attribute(torch.tensor(ids), rm, max_n_logits=3, desired_logit_prob=0.95, batch_size=64, verbose=False)
full = os.path.join(work, "cs.csgraph")
run = subprocess.run([cli, "--device", "cpu", "trace", work, "--ids", ",".join(map(str, ids)), "--transcoder", folder,
                      "--out", os.path.join(work, "cs.json"), "--full", full, "--max-n-logits", "3",
                      "--desired-logit-prob", "0.95", "--json"], capture_output=True, text=True)
if run.returncode != 0:
    sys.exit("circuitscope-cli trace failed: " + run.stderr)

with safe_open(full, "pt") as f:
    doc = json.loads(f.metadata()["circuitscope.graph"])
    starts, columns, values = (f.get_tensor(k) for k in ("adjacency.row_starts", "adjacency.columns",
                                                          "adjacency.values"))
    weights = f.get_tensor("logit_probabilities")
nodes = doc["nodes"]
n = len(nodes)
ours = torch.zeros(n, n, dtype=torch.float64)
for t in range(n):
    a, b = starts[t].item(), starts[t + 1].item()
    ours[t, columns[a:b].long()] = values[a:b].double()
theirs = ct.adjacency_matrix.double()

# --- the comparisons -------------------------------------------------------------------------
check(tuple(theirs.shape) == (n, n), f"node count: ours {n}, circuit-tracer {tuple(theirs.shape)}")
features = [(x["layer"], x["position"], x["feature"]) for x in nodes if x["kind"] == "feature"]
ct_features = [tuple(ct.active_features[i].tolist()) for i in ct.selected_features.tolist()]
check(features == ct_features, f"active features in order ({len(features)} ours, {len(ct_features)} circuit-tracer)")
check(len(features) > 20, f"enough active features to compare ({len(features)})")
kinds = [x["kind"] for x in nodes]
n_errors, n_tokens = kinds.count("error"), kinds.count("embedding")
check(n_errors == n_layers * len(ids) and n_tokens == len(ids), f"{n_errors} error and {n_tokens} embedding nodes")
acts = torch.tensor([x["activation"] for x in nodes if x["kind"] == "feature"], dtype=torch.float64)
ct_acts = ct.activation_values[ct.selected_features].double()
if features == ct_features:
    rel = ((acts - ct_acts).abs().max() / ct_acts.abs().max()).item()
    check(rel < 1e-4, f"activations: max difference {rel:.2e} of the largest")
logit_ids = [x["token_id"] for x in nodes if x["kind"] == "logit"]
ct_logit_ids = ct.logit_token_ids.tolist() if hasattr(ct, "logit_token_ids") else ct.logit_tokens.tolist()
check(logit_ids == ct_logit_ids, f"logit targets {logit_ids} (circuit-tracer {ct_logit_ids})")
prob_diff = (weights.double() - ct.logit_probabilities.double()).abs().max().item()
check(prob_diff < 1e-5, f"logit probabilities: max difference {prob_diff:.2e}")
if tuple(theirs.shape) == (n, n):
    scale = theirs.abs().amax(1, keepdim=True).clamp_min(1e-30)
    rel = ((ours - theirs).abs() / scale).max().item()
    check(rel < 1e-4, f"unpruned adjacency: max difference {rel:.2e} of its row's largest entry "
                      f"({int((theirs != 0).sum())} nonzero entries)")
    ct_replacement, ct_completeness = compute_graph_scores(ct)
    scores = json.loads(subprocess.run([cli, "graph", "info", full, "--json"], capture_output=True,
                                       text=True, check=True).stdout)["scores"]
    check(abs(scores["replacement"] - ct_replacement) < 1e-5 and abs(scores["completeness"] - ct_completeness) < 1e-5,
          f"scores: replacement {scores['replacement']:.6f} / {ct_replacement:.6f}, "
          f"completeness {scores['completeness']:.6f} / {ct_completeness:.6f}")
    node_mask, edge_mask, _ = prune_graph(ct, 0.8, 0.98)
    pruned = json.loads(subprocess.run([cli, "graph", "prune", full, "--node-threshold", "0.8", "--edge-threshold",
                                        "0.98", "--out", os.path.join(work, "pruned.json"), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    # circuit-tracer's file keeps the masked nodes that have a kept edge (embeddings and logits always).
    kept_edges = edge_mask & node_mask[:, None] & node_mask[None, :]
    linked = kept_edges.any(0) | kept_edges.any(1)
    always = torch.tensor([k in ("embedding", "logit") for k in kinds])
    ct_nodes = int((node_mask & (linked | always)).sum())
    check(pruned["nodes"] == ct_nodes and pruned["edges"] == int(kept_edges.sum()),
          f"pruned at 0.8 / 0.98: {pruned['nodes']} nodes, {pruned['edges']} edges "
          f"(circuit-tracer {ct_nodes}, {int(kept_edges.sum())})")

    # Each reads the other's graph JSON: circuit-tracer's file model (pydantic) reads ours, and
    # `graph import` reads the file circuit-tracer's create_graph_files writes; both files hold
    # the same nodes (by node_id: circuit-tracer's error ids included) and the same links.
    from circuit_tracer.frontend.graph_models import Model
    from circuit_tracer.utils.create_graph_files import create_graph_files
    with open(os.path.join(work, "pruned.json")) as f:
        mine = json.load(f)
    try:
        Model(**mine)
        check(True, "circuit-tracer's graph model reads our graph JSON")
    except Exception as e:  # noqa: BLE001 (pydantic's validation error, reported as a failure)
        check(False, f"circuit-tracer's graph model refuses our graph JSON: {e}")
    ct.cfg.tokenizer_name = work  # the tokenizer saved beside the model
    create_graph_files(ct, "peer", os.path.join(work, "ct-files"), scan="peer-" + family, node_threshold=0.8,
                       edge_threshold=0.98)
    theirs_file = os.path.join(work, "ct-files", "peer.json")
    imported = subprocess.run([cli, "graph", "import", theirs_file, "--out", os.path.join(work, "imported.csgraph"),
                               "--json"], capture_output=True, text=True)
    check(imported.returncode == 0, ("graph import reads circuit-tracer's file " + imported.stderr).strip())
    with open(theirs_file) as f:
        their_doc = json.load(f)
    ids_mine = sorted(x["node_id"] for x in mine["nodes"])
    ids_theirs = sorted(x["node_id"] for x in their_doc["nodes"])
    check(ids_mine == ids_theirs, f"the same node ids in both files ({len(ids_mine)} / {len(ids_theirs)})")
    # As lists: an error id "0_{layer}_{pos}" may also be a layer-0 feature's, so a (source,
    # target) pair can repeat.
    links_mine = sorted((x["source"], x["target"], x["weight"]) for x in mine["links"])
    links_theirs = sorted((x["source"], x["target"], x["weight"]) for x in their_doc["links"])
    same = [l[:2] for l in links_mine] == [l[:2] for l in links_theirs]
    worst = max((abs(a[2] - b[2]) for a, b in zip(links_mine, links_theirs)), default=0.0)
    largest = max((abs(l[2]) for l in links_theirs), default=1.0)
    check(same and worst <= 1e-4 * largest,
          f"the same links in both files ({len(links_mine)} / {len(links_theirs)}), weights within "
          f"{worst / largest:.2e} of the largest")
    if imported.returncode == 0:
        summary = json.loads(imported.stdout)
        check(summary["nodes"] == len(their_doc["nodes"]) and summary["edges"] == len(their_doc["links"]),
              f"graph import: {summary['nodes']} nodes, {summary['edges']} links")

# Interventions: circuit-tracer's feature_intervention (which takes the prompt as text) against
# `intervene --mode patch`, setting the most active feature of the middle layers to -2x its
# activation, with attention frozen or not and with MLPs constrained over some or all layers;
# the logits at the last position, over our top 10 after the edit.
prompt = "<s>" + PROMPT
check(rm.tokenizer(prompt).input_ids == ids, "the prompt text tokenizes to the traced ids")
_, activations = rm.get_activations(torch.tensor(ids))  # [n_layers, n_pos, n_features]
# The most active feature of the middle layers (inside every constrained range below, which
# refuses an edit that writes nowhere in it; circuit-tracer drops one) at one of the last four
# positions (gemma2's sliding window of 8 keeps earlier positions from reaching the last one
# in the layers left).
middle = activations[1 : n_layers - 1, -4:]
layer, position, feature = (int(i) for i in (middle == middle.max()).nonzero()[0])
layer, position = layer + 1, position + len(ids) - 4
value = -2 * float(activations[layer, position, feature])
for freeze, layers in ((True, None), (False, None), (True, (1, n_layers)), (True, (0, n_layers))):
    logits, _ = rm.feature_intervention(prompt, [(layer, position, feature, value)], freeze_attention=freeze,
                                        constrained_layers=range(*layers) if layers else None)
    last = logits.reshape(-1, logits.shape[-1])[-1].double()
    command = [cli, "--device", "cpu", "intervene", work, "--text", prompt, "--transcoder", folder, "--set",
               f"{layer}:{position}:{feature}={value!r}", "--mode", "patch", "--top-k", "10", "--json",
               "--freeze-attention" if freeze else "--no-freeze-attention"]
    if layers:
        command += ["--constrained-layers", f"{layers[0]}:{layers[1]}"]
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    scale = last.abs().max().item()
    worst = max(abs(t["logit"] - last[t["id"]].item()) for t in out["after"]["top"]) / scale
    moved = max(abs(d) for d in out["logit_delta"].values()) / scale  # the edit must matter
    check(out["prompt_ids"] == ids and worst < 1e-4 and moved > 1e-3,
          f"intervention (freeze_attention={freeze}, constrained_layers={layers}): logits within {worst:.2e}, "
          f"moved by up to {moved:.2e}")

print(f"{family}: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
