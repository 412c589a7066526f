#!/usr/bin/env python3
"""Loads cloze exports with the real Hugging Face `transformers`, and makes an HF model for cloze to load.

Driven by bench/check-hf-transformers.ts (npm run check:hf-transformers),
which compares the numbers; this script only loads, runs and reports.
Works with transformers 4.40+ and 5.x.

Input: one JSON object on stdin, one of
  {"mode": "check", "checks": [CHECK, ...]}
     CHECK = {"name", "arch", "dir", "ids", "attention_mask",
              "token_type_ids", "positions": [[b, l], ...]}
     arch is a transformers class name: BertForMaskedLM, ElectraForMaskedLM
     (logits [P, V] at the positions), ElectraForPreTraining (logits [P] at
     the positions) or BertForSequenceClassification (logits [B, C]).
  {"mode": "make-bert", "dir", "vocab_size", "seed", "ids",
   "attention_mask", "token_type_ids", "positions"}
     builds a small random BertForMaskedLM (every tensor, LayerNorms and
     biases included, drawn away from its init so a misplaced one shows),
     save_pretrained(dir, safe_serialization=True), then reloads it and
     reports as a check would.
Output: one JSON object on stdout (its last line)
  {"ok": true, "transformers", "torch", "results": [RESULT, ...]}
  RESULT = {"name", "arch", "logits", "missing", "unexpected", "mismatched",
            "config": {model_type, architectures, num_labels, id2label,
            label2id, hidden_size, embedding_size}, "attn_implementation"}
On failure: {"ok": false, "error"} and exit status 1.

Every forward runs in eval mode (dropout off) in float32.
"""
import json
import sys
import traceback


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)


try:
    import torch
    import transformers
except Exception as e:  # the driver names the python that lacks them
    fail(f"could not import torch and transformers: {e!r}")


def inputs_of(req):
    return {
        "input_ids": torch.tensor(req["ids"], dtype=torch.long),
        "attention_mask": torch.tensor(req["attention_mask"], dtype=torch.long),
        "token_type_ids": torch.tensor(req["token_type_ids"], dtype=torch.long),
    }


def key_list(info, k):
    """A loading-info list as sorted strings: mismatched_keys holds (name, shape in file, shape in model) tuples."""
    return sorted(x if isinstance(x, str) else " ".join(str(p) for p in x) for x in info.get(k, []))


def run_check(req):
    arch = req["arch"]
    cls = getattr(transformers, arch, None)
    if cls is None:
        fail(f"transformers {transformers.__version__} has no {arch}")
    model, info = cls.from_pretrained(req["dir"], output_loading_info=True)
    model = model.float().eval()
    with torch.no_grad():
        out = model(**inputs_of(req))
    logits = out.logits
    pos = req.get("positions") or []
    if arch == "BertForSequenceClassification":
        vals = logits.tolist()
    elif arch == "ElectraForPreTraining":
        vals = [float(logits[b, l]) for b, l in pos]
    else:
        vals = [logits[b, l].tolist() for b, l in pos]
    c = model.config
    return {
        "name": req["name"],
        "arch": arch,
        "logits": vals,
        "missing": key_list(info, "missing_keys"),
        "unexpected": key_list(info, "unexpected_keys"),
        "mismatched": key_list(info, "mismatched_keys"),
        "config": {
            "model_type": c.model_type,
            "architectures": getattr(c, "architectures", None),
            "num_labels": c.num_labels,
            "id2label": {str(k): v for k, v in c.id2label.items()},
            "label2id": {str(k): int(v) for k, v in c.label2id.items()},
            "hidden_size": c.hidden_size,
            "embedding_size": getattr(c, "embedding_size", None),
        },
        "attn_implementation": getattr(c, "_attn_implementation", None),
    }


def make_bert(req):
    torch.manual_seed(req["seed"])
    config = transformers.BertConfig(
        vocab_size=req["vocab_size"], hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
    )
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # LayerNorm weights near 1, everything else (biases too) visibly non-zero.
            p.copy_((1.0 if "LayerNorm.weight" in name else 0.0) + 0.2 * torch.randn_like(p))
    try:
        model.save_pretrained(req["dir"], safe_serialization=True)
    except TypeError:  # a transformers without the argument writes safetensors anyway
        model.save_pretrained(req["dir"])
    return run_check({**req, "name": req.get("name", "hf-random-bert"), "arch": "BertForMaskedLM"})


def main():
    req = json.loads(sys.stdin.read())
    if req.get("mode") == "check":
        results = [run_check(c) for c in req["checks"]]
    elif req.get("mode") == "make-bert":
        results = [make_bert(req)]
    else:
        fail(f"Expected mode \"check\" or \"make-bert\" but received {req.get('mode')!r}")
    print(json.dumps({"ok": True, "transformers": transformers.__version__, "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception:
        fail(traceback.format_exc())
