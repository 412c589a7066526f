#!/usr/bin/env python3
"""Loads a cloze checkpoint directory the way HF's BertForMaskedLM would, in plain torch.

`transformers` and `safetensors` are not installed here, so this is an
independent re-implementation, not HF itself:

* model.safetensors is parsed by hand (8-byte little-endian header length,
  JSON header, raw little-endian data; F32/F16/BF16/F64).
* config.json is read with HF BertConfig's defaults for absent keys, and the
  cloze-only variants (cloze_norm "pre", cloze_ffn "geglu",
  cloze_position_embedding "alibi") are refused: stock transformers ignores
  those keys and would compute a different model.
* The module tree reproduces HF's BertForMaskedLM (add_pooling_layer=False)
  so that `state_dict()` has HF's names exactly:
    bert.embeddings.{word_embeddings,position_embeddings,token_type_embeddings,LayerNorm}.*
    bert.encoder.layer.N.attention.self.{query,key,value}.*
    bert.encoder.layer.N.attention.output.{dense,LayerNorm}.*
    bert.encoder.layer.N.intermediate.dense.*
    bert.encoder.layer.N.output.{dense,LayerNorm}.*
    cls.predictions.transform.{dense,LayerNorm}.*
    cls.predictions.bias
    cls.predictions.decoder.weight   (the same Parameter as word_embeddings.weight)
    cls.predictions.decoder.bias     (the same Parameter as cls.predictions.bias)
  HF's buffers bert.embeddings.position_ids and bert.embeddings.token_type_ids
  are registered non-persistent, as in transformers >= 4.31, so they are not
  state_dict keys.
* Loading: load_state_dict(strict=False), then the result must be exact:
  the ONLY keys allowed to be missing are HF BertForMaskedLM's
  `_tied_weights_keys` = ["predictions.decoder.bias",
  "cls.predictions.decoder.weight"] (older transformers list the same two,
  plus the regex "position_ids", in `_keys_to_ignore_on_load_missing`), i.e.
  cls.predictions.decoder.weight and cls.predictions.decoder.bias, both tied
  to parameters that are loaded. The only unexpected keys tolerated are those
  HF tolerates: bert.embeddings.position_ids (older files; it must then equal
  arange) and bert.pooler.* (`_keys_to_ignore_on_load_unexpected =
  [r"pooler"]`). Any other missing/unexpected key, or any shape mismatch, is
  an error. Every tensor in the file must be consumed.
* Forward (eval mode, dropout off): HF's post-LN BERT with absolute
  positions 0..L-1, erf GELU, LayerNorm eps = layer_norm_eps, the extended
  attention mask (1 - mask) * finfo(float32).min added to the scores,
  scores scaled by 1/sqrt(head_dim), then the MLM head
  dense -> GELU -> LayerNorm -> decoder (tied) + bias.

Input: one JSON object on stdin
  {"dir": ..., "ids": [[...]], "attention_mask": [[...]],
   "token_type_ids": [[...]] (optional), "positions": [[b, l], ...]}
Output: one JSON object on stdout
  {"ok": true, "torch": ..., "vocab_size": V, "logits": [[V floats], ...],
   "missing": [...], "unexpected_ignored": [...], "loaded": N}
On failure: {"ok": false, "error": ...} and exit status 1.
"""
import json
import math
import os
import struct
import sys

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}

# HF BertForMaskedLM: _tied_weights_keys (and the non-regex part of the old
# _keys_to_ignore_on_load_missing), as full state_dict names.
ALLOWED_MISSING = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        fail(f"{path}: header of {n} bytes past the end of a {len(data)}-byte file")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    body = data[8 + n :]
    out = {}
    for name, e in header.items():
        dt = DTYPES.get(e["dtype"])
        if dt is None:
            fail(f"{path}: {name} has dtype {e['dtype']}, not a float dtype HF BERT weights use")
        begin, end = e["data_offsets"]
        numel = math.prod(e["shape"])
        size = torch.tensor([], dtype=dt).element_size()
        if end - begin != numel * size or end > len(body):
            fail(f"{path}: {name} offsets {begin}..{end} do not hold {e['shape']} {e['dtype']}")
        buf = bytearray(body[begin:end])
        t = torch.frombuffer(buf, dtype=dt) if numel else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).to(torch.float32)
    return out, meta


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])
        P = c["max_position_embeddings"]
        self.register_buffer("position_ids", torch.arange(P).expand((1, -1)), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros((1, P), dtype=torch.long), persistent=False)

    def forward(self, ids, types):
        L = ids.shape[1]
        pos = self.position_ids[:, :L]
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H = c["hidden_size"], c["num_attention_heads"]
        self.heads, self.head_dim = H, D // H
        self.query = nn.Linear(D, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D)
        self.dropout = nn.Dropout(c["attention_probs_dropout_prob"])

    def forward(self, x, ext_mask):
        B, L, D = x.shape
        split = lambda t: t.view(B, L, self.heads, self.head_dim).permute(0, 2, 1, 3)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + ext_mask
        p = self.dropout(torch.softmax(scores, dim=-1))
        return torch.matmul(p, v).permute(0, 2, 1, 3).reshape(B, L, D)


class BertSelfOutput(nn.Module):  # attention.output and output share this shape
    def __init__(self, c, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c, c["hidden_size"])

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))  # HF "gelu" = exact erf GELU


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, c["intermediate_size"])

    def forward(self, x, ext_mask):
        h = self.attention(x, ext_mask)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, ext_mask):
        for l in self.layer:
            x = l(x, ext_mask)
        return x


class BertModel(nn.Module):  # add_pooling_layer=False, as BertForMaskedLM builds it
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, ids, mask, types):
        # HF get_extended_attention_mask: [B, 1, 1, L], 0 for tokens, finfo.min for padding.
        ext = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        return self.encoder(self.embeddings(ids, types), ext)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x):
        return self.LayerNorm(nn.functional.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.decoder.bias = self.bias  # HF ties these two

    def forward(self, x):
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)


class BertForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c)
        self.cls = BertOnlyMLMHead(c)
        # tie_word_embeddings: the output embeddings are the input embeddings
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight


def hf_config(path):
    with open(path) as f:
        j = json.load(f)
    # BertConfig defaults for absent keys
    c = {
        "vocab_size": j.get("vocab_size", 30522),
        "hidden_size": j.get("hidden_size", 768),
        "num_hidden_layers": j.get("num_hidden_layers", 12),
        "num_attention_heads": j.get("num_attention_heads", 12),
        "intermediate_size": j.get("intermediate_size", 3072),
        "hidden_dropout_prob": j.get("hidden_dropout_prob", 0.1),
        "attention_probs_dropout_prob": j.get("attention_probs_dropout_prob", 0.1),
        "max_position_embeddings": j.get("max_position_embeddings", 512),
        "type_vocab_size": j.get("type_vocab_size", 2),
        "layer_norm_eps": j.get("layer_norm_eps", 1e-12),
        "pad_token_id": j.get("pad_token_id", 0),
    }
    problems = []
    if j.get("model_type", "bert") != "bert":
        problems.append(f"model_type {j.get('model_type')!r}")
    if "BertForMaskedLM" not in j.get("architectures", ["BertForMaskedLM"]):
        problems.append(f"architectures {j.get('architectures')!r}")
    if j.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {j.get('hidden_act')!r}")
    if j.get("position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type {j.get('position_embedding_type')!r}")
    if j.get("tie_word_embeddings", True) is not True:
        problems.append("tie_word_embeddings false")
    if j.get("is_decoder", False):
        problems.append("is_decoder true")
    for k, ok in (("cloze_norm", "post"), ("cloze_ffn", "gelu"), ("cloze_position_embedding", "absolute")):
        if j.get(k, ok) != ok:
            problems.append(f"{k} {j[k]!r} (stock transformers ignores it and would compute another model)")
    if c["hidden_size"] % c["num_attention_heads"]:
        problems.append("hidden_size not a multiple of num_attention_heads")
    if problems:
        fail(f"{path}: not a stock HF BertForMaskedLM config: " + "; ".join(problems))
    return c


def main():
    req = json.load(sys.stdin)
    d = req["dir"]
    c = hf_config(os.path.join(d, "config.json"))
    sd, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    if meta.get("format") != "pt":
        fail(f"model.safetensors metadata format is {meta.get('format')!r}, HF's from_pretrained wants 'pt'")

    torch.manual_seed(0)
    model = BertForMaskedLM(c)
    expected_keys = set(model.state_dict().keys())

    ignored = []
    if "bert.embeddings.position_ids" in sd:
        p = sd.pop("bert.embeddings.position_ids")
        if not torch.equal(p.reshape(-1).long(), torch.arange(p.numel())):
            fail("bert.embeddings.position_ids in the file is not arange")
        ignored.append("bert.embeddings.position_ids")
    for k in [k for k in sd if k.startswith("bert.pooler.")]:
        del sd[k]
        ignored.append(k)

    # Every parameter starts as NaN so that one left unloaded would show in the logits.
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    shapes = model.state_dict()
    bad_shapes = [f"{k}: file {list(v.shape)} vs model {list(shapes[k].shape)}" for k, v in sd.items() if k in shapes and v.shape != shapes[k].shape]
    if bad_shapes:
        fail("shape mismatches: " + "; ".join(bad_shapes))
    res = model.load_state_dict(sd, strict=False)
    missing, unexpected = sorted(res.missing_keys), sorted(res.unexpected_keys)
    if unexpected:
        fail(f"unexpected keys (HF would not load them): {unexpected}")
    if set(missing) - ALLOWED_MISSING:
        fail(f"missing keys beyond the tied ones {sorted(ALLOWED_MISSING)}: {sorted(set(missing) - ALLOWED_MISSING)}")
    if set(sd) | set(missing) != expected_keys:
        fail("loaded keys do not cover the model")
    pr = model.cls.predictions
    assert pr.decoder.weight is model.bert.embeddings.word_embeddings.weight and pr.decoder.bias is pr.bias
    for n, p in model.named_parameters():
        if torch.isnan(p).any():
            fail(f"{n} was not loaded (still NaN)")

    model.eval()
    torch.set_num_threads(1)
    ids = torch.tensor(req["ids"], dtype=torch.long)
    mask = torch.tensor(req.get("attention_mask") or [[1] * ids.shape[1]] * ids.shape[0], dtype=torch.long)
    types = torch.tensor(req["token_type_ids"], dtype=torch.long) if req.get("token_type_ids") else torch.zeros_like(ids)
    if ids.shape[1] > c["max_position_embeddings"]:
        fail("sequence longer than max_position_embeddings")
    with torch.no_grad():
        h = model.bert(ids, mask, types)
        rows = torch.stack([h[b, l] for b, l in req["positions"]])
        logits = pr(rows)
    print(json.dumps({
        "ok": True,
        "torch": torch.__version__,
        "vocab_size": c["vocab_size"],
        "loaded": len(sd),
        "missing": missing,
        "unexpected_ignored": ignored,
        "logits": logits.tolist(),
    }))


if __name__ == "__main__":
    main()
