"""The real-checkpoint path: safetensors I/O, the checkpoint's config and tokenizer checks, the aMUSEd-style VQ, the
ONNX passes (shared external data, fp16) and the scaled-down twin.  Entry points: ../real_export.py, ../build_twin.py."""
