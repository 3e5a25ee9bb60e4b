#!/usr/bin/env python3
"""Peer test: Circuitscope's forward pass against Hugging Face `transformers` itself.

For each case of one family, builds a small random model with transformers' own config class,
saves it with save_pretrained (with a byte-level tokenizer made by `tokenizers`), and compares
  - the logits at every position (`circuitscope-cli logits FOLDER --ids ... --all-positions`)
    with transformers' forward of the same checkpoint in float32: max |ours - theirs| over
    max |theirs| at most 1e-4. The engine computes in float32 whatever the stored dtype, so a
    bf16/f16 checkpoint is compared with transformers run on the same (rounded) weights in
    float32 at the same 1e-4; transformers' own bf16/f16 forward is compared too, at 6e-2 /
    1e-2 (what 8 / 11 mantissa bits leave after a few layers; the figure is printed);
  - the hidden state after the embedding and after every layer (`logits --hidden-states`) with
    transformers' output_hidden_states, at the same 1e-4 of each layer's largest value
    (transformers' last one is after the final norm: ours goes through its norm module first);
  - greedy generation of 20 tokens (`circuitscope-cli generate FOLDER --ids ... --max-new 20`)
    with transformers' generate(do_sample=False) in float32: identical ids.

usage: peer_transformers.py --cli PATH --family llama|qwen3|gemma2|gpt2 [--tmp DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import (AutoModelForCausalLM, Gemma2Config, GPT2Config, LlamaConfig, PreTrainedTokenizerFast,
                              Qwen3Config)
except ImportError as e:
    sys.exit(f"peer_transformers: the pinned `transformers` is missing ({e}); run scripts/install-deps")
from peer_tokenizers import byte_level  # noqa: E402

torch.set_num_threads(2)
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
TOKENIZER, _ = byte_level("gpt2")
VOCAB = TOKENIZER.get_vocab_size(with_added_tokens=True)
# Larger than the default 0.02, so that activations, soft-caps and RoPE all matter.
INIT = 0.2
SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
             initializer_range=INIT, bos_token_id=0, eos_token_id=VOCAB - 1, pad_token_id=None)


def cases(family):
    """(name, config, stored dtype, how to save)"""
    if family == "llama":
        return [
            ("gqa_llama3_rope_untied_f32", LlamaConfig(**SMALL, num_key_value_heads=2, rope_theta=50000.0,
                                                       rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                     "original_max_position_embeddings": 8}),
             torch.float32, "plain"),
            ("linear_rope_tied_f16", LlamaConfig(**SMALL, num_key_value_heads=4, tie_word_embeddings=True,
                                                 rope_scaling={"rope_type": "linear", "factor": 2.0}),
             torch.float16, "plain"),
            ("sharded_bf16", LlamaConfig(**SMALL, num_key_value_heads=1), torch.bfloat16, "sharded"),
            ("tied_lm_head_only_f32", LlamaConfig(**SMALL, num_key_value_heads=2, tie_word_embeddings=True),
             torch.float32, "lm_head_only"),
        ]
    if family == "qwen3":
        q = dict(SMALL, head_dim=16)
        return [
            ("gqa_untied_f32", Qwen3Config(**q, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=1e6),
             torch.float32, "plain"),
            ("tied_bf16", Qwen3Config(**q, num_key_value_heads=4, tie_word_embeddings=True), torch.bfloat16, "plain"),
        ]
    if family == "gemma2":
        g = dict(SMALL, head_dim=16, num_key_value_heads=2, sliding_window=4, query_pre_attn_scalar=16,
                 final_logit_softcapping=5.0, attn_logit_softcapping=2.0, attn_implementation="eager")
        return [
            ("sliding4_softcaps_f32", Gemma2Config(**g), torch.float32, "plain"),
            ("sliding4_softcaps_bf16", Gemma2Config(**g), torch.bfloat16, "sharded"),
        ]
    if family == "gpt2":
        c = dict(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=64, initializer_range=INIT,
                 bos_token_id=0, eos_token_id=VOCAB - 1)
        return [("f32", GPT2Config(**c), torch.float32, "plain"), ("f16", GPT2Config(**c), torch.float16, "plain")]
    raise SystemExit(f"unknown family {family}")


def save(config, dtype, how, folder):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # norms' weights away from their init, so a wrong norm shows
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model = model.to(dtype)
    model.save_pretrained(folder, max_shard_size="100KB" if how == "sharded" else "5GB")
    if how == "lm_head_only":  # an exporter that keeps only one of the tied pair
        path = os.path.join(folder, "model.safetensors")
        tensors = load_file(path)
        tensors["lm_head.weight"] = tensors.pop("model.embed_tokens.weight")
        save_file(tensors, path, metadata={"format": "pt"})
    PreTrainedTokenizerFast(tokenizer_object=TOKENIZER, bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>").save_pretrained(folder)
    if how == "sharded":
        assert os.path.exists(os.path.join(folder, "model.safetensors.index.json")), os.listdir(folder)


def cli(args, *command):
    out = subprocess.run([args.cli, "--device", "cpu", *command, "--json"], capture_output=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"circuitscope-cli {' '.join(command[:2])} failed: {out.stderr.decode(errors='replace')}")
    return json.loads(out.stdout)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--family", required=True)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    failures = []
    gen = torch.Generator().manual_seed(5)
    for name, config, dtype, how in cases(args.family):
        t0 = time.time()
        with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
            save(config, dtype, how, folder)
            prompt = torch.randint(1, VOCAB - 1, (1, 16), generator=gen)
            ids = ",".join(str(i) for i in prompt[0].tolist())
            ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
            with torch.no_grad():
                out = ref(prompt, output_hidden_states=True)
                want = out.logits[0]  # [n_pos, vocab]
                want_hidden = [h[0] for h in out.hidden_states]  # n_layers + 1 of [n_pos, d_model]
                want_gen = ref.generate(prompt, max_new_tokens=20, do_sample=False, attention_mask=torch.ones_like(prompt),
                                        pad_token_id=config.eos_token_id)[0, 16:].tolist()
            ours = cli(args, "logits", folder, "--ids", ids, "--all-positions", "--top-k", "0", "--hidden-states")
            got = torch.tensor(ours["logits"])
            hidden = [torch.tensor(h) for h in ours["hidden_states"]]
            final_norm = ref.transformer.ln_f if args.family == "gpt2" else ref.model.norm
            with torch.no_grad():
                hidden[-1] = final_norm(hidden[-1])
            worst = max(rel(h, w) for h, w in zip(hidden, want_hidden)) if len(hidden) == len(want_hidden) else 1.0
            if worst > 1e-4:
                failures.append(f"{name}: hidden states differ from transformers' (worst layer rel {worst:.2e}, "
                                f"{len(hidden)} vs {len(want_hidden)} states)")
            ours_gen = cli(args, "generate", folder, "--ids", ids, "--max-new", "20")["ids"]
            line = (f"{args.family}/{name}: logits {tuple(got.shape)} vs transformers float32: rel {rel(got, want):.2e}, "
                    f"{len(hidden)} hidden states: worst rel {worst:.2e}")
            if got.shape != want.shape or rel(got, want) > 1e-4:
                failures.append(f"{name}: logits differ from transformers' float32 forward (rel {rel(got, want):.2e})")
            if dtype != torch.float32:
                native = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()
                with torch.no_grad():
                    theirs = native(prompt).logits[0].float()
                tol = 6e-2 if dtype == torch.bfloat16 else 1e-2
                line += f"; vs its own {str(dtype)[6:]} forward: rel {rel(got, theirs):.2e} (tolerance {tol:g})"
                if rel(got, theirs) > tol:
                    failures.append(f"{name}: logits differ from transformers' {dtype} forward by {rel(got, theirs):.2e}")
            same = ours_gen == want_gen
            line += f"; greedy 20 tokens {'identical' if same else 'DIFFER'}; {time.time() - t0:.1f} s"
            if not same:
                failures.append(f"{name}: greedy generation differs:\n  transformers {want_gen}\n  ours         {ours_gen}")
            print(line, flush=True)
    for f in failures:
        print(f)
    print(f"peer_transformers {args.family}: transformers {transformers.__version__}, torch {torch.__version__}; "
          f"{len(failures)} disagreements")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
