"""The scaled-down twin: a checkpoint directory in the real checkpoint's layout (hub file names, LLaDA config.json,
bf16 safetensors shards + index, tokenizer.json with the DiMOO special tokens at the real ids, vqvae/ as a diffusers
VQModel folder), with tiny dimensions and random weights from a seed.  Everything the server reads — vocabulary width
134,548, every special id, the image code offset, the 8192-entry codebook of dimension 64, the 16x VQ with five blocks —
is the real one; only d_model, layers, heads, FFN and the VQ channel widths are small.  It is exported by exactly the
path a real checkpoint takes (exporter.export_checkpoint)."""

import json
import os

import torch

from model import Config, DimooLM

from . import checkpoint as ckpt
from . import safetensors_io as st
from .vqgan import VQConfig, VQGAN

TWIN = dict(d_model=64, n_layers=2, n_heads=2, ffn_hidden=192, rope_theta=500000.0)
TWIN_VQ = dict(block_out_channels=[16, 32, 32, 32, 64], layers_per_block=2, latent_channels=64,
               num_vq_embeddings=8192, norm_num_groups=8)
VOCAB = ckpt.REAL_TOKENS["codeOffset"] + ckpt.REAL_TOKENS["codebookSize"]  # 134,548

# spec §1.1 ids; <system>/<user> and BOS are the twin's assumptions (spec §10), checked against a real tokenizer at
# first contact (the exporter and libs/runtime checkTokenizer refuse a mismatch)
SPECIALS = {
    "<|startoftext|>": 126080, "<|endoftext|>": ckpt.EOS_ID, "<|mdm_mask|>": 126336, "<IMAGE>": 126349,
    "</IMAGE>": 126350, "<uncondition>": 126351, "<answer>": 126354, "</answer>": 126355,
    "<system>": 126352, "</system>": 126353, "<user>": 126342, "</user>": 126343,
    # names unknown (spec §10); the twin gives the ids a name so that they exist in its vocabulary
    "<|twin_row_end|>": 126084, "<|twin_answer_pad|>": 126339,
}
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "i"), ("e", "r"), ("o", "n"),
          ("r", "e"), ("a", "t"), ("e", "n"), ("Ġ", "c"), ("o", "r"), ("Ġ", "s"), ("e", "d")]


def byte_alphabet():
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    def printable(b):
        return 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255
    out, extra = [], 0
    for b in range(256):
        if printable(b):
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def tokenizer_json(bos="<|startoftext|>"):
    """A byte-level BPE tokenizer.json (the kind LLaDA ships) with a few merges and the specials at the real ids."""
    vocab = {c: i for i, c in enumerate(byte_alphabet())}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for s, i in sorted(SPECIALS.items(), key=lambda kv: kv[1])]
    single = ([{"SpecialToken": {"id": bos, "type_id": 0}}] if bos else []) + [{"Sequence": {"id": "A", "type_id": 0}}]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "TemplateProcessing", "single": single,
                           "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": ({bos: {"id": bos, "ids": [SPECIALS[bos]], "tokens": [bos]}} if bos else {})},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in MERGES]},
    }


def write_twin(directory, seed=0, shards=2):
    """Writes the twin checkpoint into `directory`. -> list of files written."""
    os.makedirs(os.path.join(directory, "vqvae"), exist_ok=True)
    torch.manual_seed(seed)
    cfg = Config(vocab_size=VOCAB, **TWIN)
    lm = DimooLM(cfg)
    vq = VQGAN(VQConfig(**TWIN_VQ))
    files = st.write_sharded(directory, ckpt.lm_tensors(lm), shards=shards, stem="model", dtype="BF16")
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(ckpt.config_json(cfg), f, indent=2)
    vq_sd = {k: v.detach().numpy() for k, v in vq.state_dict().items()}
    st.write_file(os.path.join(directory, "vqvae", "diffusion_pytorch_model.safetensors"), vq_sd, "F32",
                  {"format": "pt"})
    with open(os.path.join(directory, "vqvae", "config.json"), "w") as f:
        json.dump(vq.cfg.to_json(), f, indent=2)
    with open(os.path.join(directory, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>",
                   "eos_token": "<|endoftext|>", "clean_up_tokenization_spaces": False,
                   "model_max_length": 1000000000000000019884624838656}, f, indent=2)
    return files
