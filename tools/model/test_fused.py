"""Unit tests of the fused-attention export (fused_attention.py, Config(fused_attention=True)) on a small random model:

    /usr/bin/python3 -m unittest discover -s tools/model -p 'test_fused.py'

The numerics of the exported graphs under onnxruntime (CPU and WebGPU providers) are checked by
libs/runtime/src/fused-attention.spec.ts; here: the PyTorch math is unchanged, and the graphs hold one
com.microsoft MultiHeadAttention node per layer wired as the WebGPU kernel accepts it.
"""

import os
import sys
import tempfile
import types
import unittest
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export  # noqa: E402
import fused_attention  # noqa: E402
from model import Config, DimooLM  # noqa: E402

TOK = types.SimpleNamespace(vocab_size=40, code_offset=8)


def small(fused):
    torch.manual_seed(0)
    lm = DimooLM(Config(vocab_size=TOK.vocab_size, d_model=16, n_layers=2, n_heads=2, ffn_hidden=32,
                        fused_attention=fused)).eval()
    export.round_weights_fp16(lm)
    return lm


def export_specs(lm, names):
    """Exports the named transformer graphs of `lm` to a temporary directory -> {name: onnx.ModelProto}."""
    import onnx
    ex = export.example_inputs(TOK, lm.cfg)
    specs = {**export.transformer_specs(lm, ex), **export.resident_specs(lm, ex)}
    out = {}
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            module, args, ins, outs, dyn = specs[name]
            p = os.path.join(d, f"{name}.onnx")
            with torch.no_grad():
                export._export(module, args, p, ins, outs, dyn)
            export._fp16_initializers(p)
            out[name] = onnx.load(p)
    return out


class FusedAttentionTest(unittest.TestCase):
    def test_reference_is_the_model_math(self):
        """Fused or not, the PyTorch model computes the same values (and still trains: gradients flow)."""
        plain, fused = small(False), small(True)
        ex = export.example_inputs(TOK, plain.cfg)
        args = (ex["input_ids"], ex["position_ids"], ex["attention_mask"])
        self.assertTrue(torch.equal(plain.forward_logits(*args), fused.forward_logits(*args)))
        R, L = ex["input_ids"].shape
        qi = ex["query_index"]
        ids_s, pos_s = torch.gather(ex["input_ids"], 1, qi), torch.gather(ex["position_ids"], 1, qi)
        past = [(ex["past"][2 * i], ex["past"][2 * i + 1]) for i in range(plain.cfg.n_layers)]
        a = plain.partial_step(ids_s, qi, pos_s, ex["attention_mask"], ex["vocab_range"], past)
        b = fused.partial_step(ids_s, qi, pos_s, ex["attention_mask"], ex["vocab_range"], past)
        self.assertTrue(torch.equal(a[0], b[0]))
        fused.train()
        fused.forward_logits(*args).sum().backward()
        self.assertIsNotNone(fused.transformer["blocks"][0].q_proj.weight.grad)

    def test_bias_rows(self):
        bias = DimooLM.key_bias(torch.tensor([[1, 1, 0], [1, 0, 0]]))
        q = fused_attention.query_bias(bias, torch.zeros(2, 5, 4))
        self.assertEqual(tuple(q.shape), (2, 1, 5, 3))
        self.assertTrue(torch.equal(q[:, :, 4], bias[:, :, 0]))

    def test_graphs_hold_one_multihead_attention_per_layer(self):
        names = ("denoise", "denoise_partial", "denoise_resident")
        graphs = export_specs(small(True), names)
        for name, m in graphs.items():
            nodes = list(m.graph.node)
            mha = [n for n in nodes if n.op_type == "MultiHeadAttention"]
            self.assertEqual(len(mha), 2, name)
            self.assertFalse(any(n.op_type == "Softmax" for n in nodes), name)
            self.assertIn(("com.microsoft", 1), [(o.domain, o.version) for o in m.opset_import])
            producer = {o: n for n in nodes for o in n.output}
            for n in mha:
                self.assertEqual(n.domain, "com.microsoft")
                attrs = {a.name: a for a in n.attribute}
                self.assertEqual(attrs["num_heads"].i, 2)
                self.assertAlmostEqual(attrs["scale"].f, 1 / 8 ** 0.5, places=6)
                # query, key, value, no projection bias, no key_padding_mask (WebGPU refuses it), attention_bias
                self.assertEqual(len(n.input), 6)
                self.assertEqual((n.input[3], n.input[4]), ("", ""))
                # the key-padding bias expanded to Q rows once per graph (the exporter chains float->float Casts
                # between layers; onnxruntime's CastElimination removes them)
                b = producer[n.input[5]]
                while b.op_type == "Cast" and b.attribute[0].i == 1:
                    b = producer[b.input[0]]
                self.assertEqual(b.op_type, "Expand")
                if name != "denoise":
                    # the partial steps attend over the ScatterND-updated cache (BNSH), read in place
                    self.assertEqual([producer[n.input[i]].op_type for i in (1, 2)], ["ScatterND", "ScatterND"])
        # the partial step's updated cache is both attention's key/value and the graph's present output
        resident = graphs["denoise_resident"]
        mha0 = next(n for n in resident.graph.node if n.op_type == "MultiHeadAttention")
        self.assertIn(mha0.input[1], [o.name for o in resident.graph.output])

    def test_a_fused_model_directory_passes_conformance(self):
        """`export.py --fused-attention` on the tiny model: every graph fused (the segment graph's unrolled partial steps
        too) and the directory conformant (conformance.py evaluates the node as fused_attention.reference does)."""
        import onnx

        import conformance
        here = os.path.dirname(os.path.abspath(__file__))
        with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = os.path.join(here, "..", "..", "models", "tiny")
            self.assertEqual(export.main(["--from", src, "--out", d, "--fused-attention"]), 0)
            segment = onnx.load(os.path.join(d, "denoise_segment.onnx"), load_external_data=False)
            ops = [n.op_type for n in segment.graph.node]
            self.assertEqual(ops.count("Softmax"), 0)
            self.assertGreater(ops.count("MultiHeadAttention"), 4)
            self.assertEqual(conformance.main([d]), 0)

    def test_off_by_default(self):
        self.assertFalse(Config(vocab_size=10).fused_attention)
        m = export_specs(small(False), ("denoise_partial",))["denoise_partial"]
        self.assertFalse(any(n.op_type == "MultiHeadAttention" for n in m.graph.node))
        self.assertEqual([o.domain for o in m.opset_import], [""])


if __name__ == "__main__":
    unittest.main()
