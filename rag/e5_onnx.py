"""An int8 ONNX file of a sentence-transformers folder (multilingual-e5-small), made at install
time for the `onnx-int8` embedding backend: exported with `torch.onnx`, fused by onnxruntime's
BERT optimiser (one operator per attention, layer norm, GELU), quantised with
`onnxruntime.quantization.quantize_dynamic`, checked against the folder's own float32 model,
and recorded (size and sha256) in `citadel-onnx.json` beside it. Never made at run time.

    python -m rag.e5_onnx models/multilingual-e5-small

The graph takes `input_ids` and `attention_mask` and gives `sentence_embedding`: the folder's
mean pooling and L2 normalisation are inside it, so the runtime needs only onnxruntime and
the folder's `tokenizer.json`. The export and the quantisation are deterministic: the same
folder and the same torch and onnxruntime give the same bytes. A folder whose ONNX file
matches its record, made from the folder's current weights, is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from rag.errors import ConfigurationError
from rag.weights import digest

ONNX_FILE = "model-int8.onnx"
MANIFEST = "citadel-onnx.json"
OPSET = 17
# The float32 model and the int8 file must agree this well on the check texts (cosine);
# measured: 0.99+ on the handbook's chunks (bench/embed_speed.py --quality).
MIN_COSINE = 0.95
CHECK_TEXTS = (
    "passage: The Debian Administrator's Handbook\n\nAPT pins a package to a release.",
    "passage: Combien de jours de congés payés les salariés ont-ils ?",
    "query: How do I find which package ships a file?",
    "query: 员工每年有多少天带薪年假？",
    "passage: " + "apt-get install --no-install-recommends foo " * 80,  # beyond 512 tokens
)


def _weights_sha256(folder: Path) -> str:
    return digest(folder / "model.safetensors")


def _torch_embedding(folder: Path) -> Any:
    """The folder's transformer with its mean pooling and L2 normalisation, in torch."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Embedding()


def export_fp32(folder: Path, out: Path) -> None:
    """The folder's embedding (mean pooling and normalisation included) as float32 ONNX."""
    import torch

    model = _torch_embedding(folder)
    # Traced with padding in the batch: a mask of ones only would let the model skip masking.
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 5, 2, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    # The TorchScript exporter (dynamo=False): the torch.export one needs onnxscript, which
    # Citadel does not install. It warns that it is legacy and that tracing fixes Python
    # branches on tensors (transformers' mask shortcuts, settled by the padded example).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(out),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
        )


def fuse(folder: Path, fp32: Path) -> Any:
    """onnxruntime's BERT fusions: attention, skip layer normalisation and GELU each one
    operator (fewer, larger kernels; the attention's own products stay float32 once
    quantised). Gives the fused model, in memory."""
    from onnxruntime.transformers.optimizer import optimize_by_onnxruntime, optimize_model

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    # The two steps of `optimize_model(opt_level=1)`, with onnxruntime's intermediate model
    # beside ours: on its own it writes that model (450 MB) to the system's temporary
    # folder, and a full one fails with "Protobuf serialization failed" (seen in CI).
    # ConstantSharing stays off, as optimize_model has it.
    basic = fp32.with_name("basic.onnx")
    optimize_by_onnxruntime(
        str(fp32),
        use_gpu=False,
        optimized_model_path=str(basic),
        opt_level=1,
        disabled_optimizers=["ConstantSharing"],
    )
    fused = optimize_model(
        str(basic),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=0,
    )
    basic.unlink()
    return fused.model


def quantize_int8(fused: Any, out: Path) -> None:
    """Weights of the matrix products (and the token embedding table) to int8, per output
    channel; activations quantised per batch at run time. From the model in memory: from a
    file, onnxruntime would write a second, shape-inferred copy of it beside the file."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        fused,
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # The fused operators (com.microsoft domain) defeat shape inference: float32 it is.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def check(folder: Path, onnx_file: Path) -> float:
    """The lowest cosine between the folder's float32 model (in torch) and the ONNX file on
    the check texts; raises when below `MIN_COSINE` or when the shapes differ."""
    import numpy as np
    import torch

    from rag.adapters.onnx_embedder import OnnxSession

    session = OnnxSession(onnx_file, folder, threads=1)
    encoded = session.encode(list(CHECK_TEXTS))
    with torch.no_grad():
        reference = _torch_embedding(folder)(
            torch.from_numpy(encoded["input_ids"]), torch.from_numpy(encoded["attention_mask"])
        ).numpy()
    found = session.embed(list(CHECK_TEXTS))
    if found.shape != reference.shape:
        raise ConfigurationError(f"{onnx_file} gives {found.shape}, expected {reference.shape}")
    lowest = float(np.min(np.sum(found * reference, axis=1)))
    if lowest < MIN_COSINE:
        raise ConfigurationError(
            f"{onnx_file} agrees with the float32 model at cosine {lowest:.3f} only "
            f"(at least {MIN_COSINE} expected): not installed"
        )
    return lowest


def is_current(folder: Path) -> bool:
    """The int8 file is there, as recorded, and was made from the folder's current weights."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        path = folder / record["file"]
        return bool(
            record["weights_sha256"] == _weights_sha256(folder)
            and path.stat().st_size == record["size"]
            and digest(path) == record["sha256"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build(folder: Path) -> Path:
    """Export, quantise, check, then move the file in and write its record last."""
    if not (folder / "model.safetensors").is_file():
        raise ConfigurationError(f"{folder} is not a sentence-transformers folder with weights")
    target = folder / ONNX_FILE
    if is_current(folder):
        print(f"int8 ONNX: {target} is current, kept", flush=True)
        return target
    import onnxruntime
    import torch

    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-") as scratch:
        fp32, int8 = Path(scratch) / "model.onnx", Path(scratch) / ONNX_FILE
        export_fp32(folder, fp32)
        fused = fuse(folder, fp32)
        # Each model goes once used: at most two of them (900 MB) on disk at any time.
        fp32.unlink()
        quantize_int8(fused, int8)
        del fused
        lowest = check(folder, int8)
        int8.chmod(0o644)
        int8.replace(target)
    record = {
        "file": ONNX_FILE,
        "size": target.stat().st_size,
        "sha256": digest(target),
        "weights_sha256": _weights_sha256(folder),
        "made_with": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "opset": OPSET,
        "graph": "onnxruntime BERT fusions (attention, skip layer norm, GELU)",
        "quantisation": "onnxruntime quantize_dynamic, weights QInt8 per channel",
        "check_min_cosine": round(lowest, 4),
    }
    (folder / MANIFEST).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"int8 ONNX: {target} built (cosine to float32 >= {lowest:.4f})", flush=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        prog="python -m rag.e5_onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="The sentence-transformers folder.")
    args = parser.parse_args(argv)
    try:
        build(args.folder)
    except (ConfigurationError, OSError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
