"""Attention as one `com.microsoft::MultiHeadAttention` node per layer (opt-in: `Config(..., fused_attention=True)`).

onnxruntime's WebGPU provider runs that contrib op as its own attention kernel (scores, softmax and the weighted sum in
its shaders, flash attention where the adapter allows) instead of the MatMul, Mul, Add, Softmax, MatMul chain the plain
export writes. The inputs are chosen so that the WebGPU kernel accepts them (onnxruntime
contrib_ops/webgpu/bert/multihead_attention.cc and contrib_ops/cpu/bert/multihead_attention_helper.h):

- query [R, Q, d]: the rows after RoPE, heads merged (BSD);
- key, value [R, H, L, hd]: the cache layout (K after RoPE, heads split, BNSH). A 4-D key is the op's
  "cross attention" form (format Q_K_V_BSNH_BNSH_BNSH): the kernel reads it in place, so the partial step's
  ScatterND-updated cache and the full step's present K/V feed attention without another transpose;
- attention_bias [R, 1, Q, L]: the additive key-padding bias (0 or -1e9). The WebGPU kernel refuses
  `key_padding_mask` ("not implemented for webgpu") and the shape check wants dimension 2 equal to Q, so the
  [R, 1, 1, L] bias is expanded once per graph and shared by every layer.

Outside an ONNX export the same math runs in PyTorch (differentiable), so training and the torch checks are unchanged.

Known export side effect (torch 1.13): the exporter cannot infer a contrib op's output shape and marks every shape
after it as unreliable, so static sizes downstream of attention are written as named symbols (e.g. the vocabulary axis
of forward_logits' logits, the head axes of denoise_resident's present K/V; conformance checks ranks and dynamic axes
only), and sample_rule's `squeeze(-1)` in `denoise` exports as an If on a [B, N] tensor. Neither a setType on the
output nor a Reshape/Cast after it changes that in this torch version.
"""

import torch
from torch.onnx import symbolic_helper


def reference(query, key, value, bias, num_heads, scale):
    """query [R, Q, d], key/value [R, H, L, hd], bias [R, 1, 1 or Q, L] -> [R, Q, d]: softmax(q·kᵀ·scale + bias)·v,
    exactly as DimooLM.run_layers computes it unfused."""
    R, Q, d = query.shape
    qh = query.reshape(R, Q, num_heads, d // num_heads).transpose(1, 2)
    att = torch.softmax(torch.matmul(qh, key.transpose(-1, -2)) * scale + bias.to(query.dtype), dim=-1)
    return torch.matmul(att, value).transpose(1, 2).reshape(R, Q, d)


class _MultiHeadAttention(torch.autograd.Function):
    """ONNX `com.microsoft::MultiHeadAttention` (no packed inputs, no projection bias, no key_padding_mask, no past)."""

    @staticmethod
    def forward(ctx, query, key, value, bias, num_heads, scale):  # noqa: D102  (torch API)
        return reference(query, key, value, bias, num_heads, scale)

    @staticmethod
    def symbolic(g, query, key, value, bias, num_heads, scale):  # noqa: D102
        none = symbolic_helper._optional_input_placeholder_tensor(g)  # an omitted input ("")
        return g.op("com.microsoft::MultiHeadAttention", query, key, value, none, none, bias, num_heads_i=num_heads,
                    scale_f=scale)


def multi_head_attention(query, key, value, bias, num_heads, scale):
    """query [R, Q, d] (after RoPE), key/value [R, H, L, hd] (the cache layout), bias [R, 1, Q, L] -> [R, Q, d]."""
    if torch.onnx.is_in_onnx_export():
        return _MultiHeadAttention.apply(query, key, value, bias, num_heads, float(scale))
    return reference(query, key, value, bias, num_heads, scale)


class _ExpandRows(torch.autograd.Function):
    """bias [R, 1, 1, L] -> [R, 1, Q, L], Q = rows.shape[1], as one Expand by [1, 1, Q, 1] (a traced expand(-1, -1,
    Q, -1) exports a chain of Equal/Where/ConstantOfShape nodes)."""

    @staticmethod
    def forward(ctx, bias, rows):  # noqa: D102  (torch API)
        return bias.expand(-1, -1, rows.shape[1], -1)

    @staticmethod
    def symbolic(g, bias, rows):  # noqa: D102
        one = g.op("Constant", value_t=torch.tensor([1, 1], dtype=torch.int64))
        shape = g.op("Concat", one, g.op("Shape", rows, start_i=1, end_i=2),
                     g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)), axis_i=0)
        return g.op("Expand", bias, shape)


def query_bias(bias, rows):
    """The key-padding bias [R, 1, 1, L] expanded to [R, 1, Q, L] for the Q rows of `rows` [R, Q, ...] (the op's
    attention_bias must have Q rows). `rows` should be a tensor already on the device (the hidden states, not the
    int64 ids), so that its Shape needs no copy."""
    if torch.onnx.is_in_onnx_export():
        return _ExpandRows.apply(bias, rows)
    return bias.expand(-1, -1, rows.shape[1], -1)
