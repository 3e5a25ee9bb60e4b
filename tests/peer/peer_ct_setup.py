"""The inputs circuit-tracer and circuitscope-cli are given side by side (the peer test and
scripts/peer-bench): a tokenizer made by tokenizers, a random model made and saved by
transformers, and a random JumpReLU per-layer transcoder set made by circuit-tracer's own
classes and saved in its format (layer_N.safetensors + config.yaml)."""
import os

import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from circuit_tracer.transcoder.activation_functions import JumpReLU
from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder
from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder, TranscoderSet

TEXT = ("Fact: Michael Jordan plays the sport of basketball. The cat sat on the mat and the dog ran to the "
        "park. Fact: the capital of the state containing Dallas is Austin.")


def make(work, family, d_model=64, n_layers=3, n_features=48, d_mlp=128, vocab=280, threshold=0.1, seed=1234,
         clt=False):
    """Writes the model folder `work` (config, weights, tokenizer) and its transcoders: a
    per-layer set in work/plt, or with `clt` a cross-layer transcoder in work/clt (circuit-tracer's
    W_enc_i / W_dec_i files); returns (tokenizer, circuit-tracer transcoders, their folder)."""
    torch.manual_seed(seed)
    os.makedirs(work, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT] * 40, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<s>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>").save_pretrained(work)
    heads = max(4, d_model // 64)
    common = dict(vocab_size=tok.get_vocab_size(), hidden_size=d_model, intermediate_size=d_mlp,
                  num_hidden_layers=n_layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                  max_position_embeddings=256, bos_token_id=1, eos_token_id=1, pad_token_id=0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
        input_hook, output_hook = "mlp.hook_in", "mlp.hook_out"
    elif family == "gemma2":
        head_dim = d_model // heads
        model = Gemma2ForCausalLM(Gemma2Config(**common, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                                               sliding_window=8, attn_logit_softcapping=50.0,
                                               final_logit_softcapping=30.0))
        # GemmaScope's sets: the pre-MLP norm's output before its weight, into the MLP's output.
        input_hook, output_hook = "ln2.hook_normalized", "hook_mlp_out"
    else:
        raise ValueError(f"unknown family {family}")
    model = model.float().eval()
    with torch.no_grad():  # norm weights away from their initial value, so that they matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_((0.0 if family == "gemma2" else 1.0) + 0.2 * torch.randn_like(p))
    model.save_pretrained(work)

    if clt:
        folder = os.path.join(work, "clt")
        t = CrossLayerTranscoder(n_layers, n_features, d_model, activation_function="jump_relu", lazy_decoder=False,
                                 feature_input_hook=input_hook, feature_output_hook=output_hook, scan="peer-" + family,
                                 device=torch.device("cpu"), dtype=torch.float32)
        with torch.no_grad():
            t.W_enc.copy_(torch.randn(n_layers, n_features, d_model) / d_model ** 0.5)
            for i, w in enumerate(t.W_dec):  # layer i's features write to layers i .. n_layers - 1
                w.copy_(torch.randn(n_features, n_layers - i, d_model) / (n_features * (n_layers - i)) ** 0.5)
            t.b_enc.copy_(0.1 * torch.randn(n_layers, n_features) - 0.1)
            t.b_dec.copy_(0.01 * torch.randn(n_layers, d_model))
            t.activation_function.threshold.fill_(threshold)
        t.to_safetensors(folder)
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            yaml.safe_dump({"model_name": family, "model_kind": "cross_layer_transcoder",
                            "feature_input_hook": input_hook, "feature_output_hook": output_hook,
                            "scan": "peer-" + family}, f)
        return tok, t, folder

    folder = os.path.join(work, "plt")
    os.makedirs(folder, exist_ok=True)
    transcoders = {}
    for layer in range(n_layers):
        t = SingleLayerTranscoder(d_model, n_features, JumpReLU(torch.full((n_features,), threshold)), layer,
                                  dtype=torch.float32, device=torch.device("cpu"))
        with torch.no_grad():
            t.W_enc.copy_(torch.randn(n_features, d_model) / d_model ** 0.5)
            t.W_dec.copy_(torch.randn(n_features, d_model) / n_features ** 0.5)
            t.b_enc.copy_(0.1 * torch.randn(n_features) - 0.1)
            t.b_dec.copy_(0.01 * torch.randn(d_model))
        t.to_safetensors(os.path.join(folder, f"layer_{layer}.safetensors"))
        transcoders[layer] = t
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        yaml.safe_dump({"model_name": family, "model_kind": "transcoder_set", "feature_input_hook": input_hook,
                        "feature_output_hook": output_hook, "scan": "peer-" + family,
                        "transcoders": [f"layer_{layer}.safetensors" for layer in range(n_layers)]}, f)
    tset = TranscoderSet(transcoders, feature_input_hook=input_hook, feature_output_hook=output_hook,
                         scan="peer-" + family)
    return tok, tset, folder
