"""Unit tests of the real-checkpoint path (tools/model/real): safetensors I/O, config / weight / tokenizer checks that
refuse a mismatching checkpoint, the aMUSEd VQ layout, the ONNX passes (shared external data, fp16).  The whole twin
build, its conformance and the PyTorch-vs-onnxruntime parity run in the Nx target model-tools:twin and
libs/runtime/src/twin.spec.ts."""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import onnx_eval
from model import Config, DimooLM
from real import checkpoint as ckpt
from real import onnx_passes, twin, vqgan
from real import safetensors_io as st


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dimoo-test-real-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class SafetensorsTest(Tmp):
    def test_bf16_round_trip_and_rounding(self):
        x = np.array([1.0, -2.5, 1e-3, 3.14159265, 65504.0, 1.00390625, 1.01171875], np.float32)
        back = st.bf16_to_f32(st.f32_to_bf16(x))
        self.assertTrue(np.array_equal(back, torch.from_numpy(x).bfloat16().float().numpy()))  # torch's rounding
        p = os.path.join(self.dir, "a.safetensors")
        st.write_file(p, {"w": x.reshape(7, 1), "b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "BF16")
        f = st.SafetensorsFile(p)
        self.assertEqual(f.keys(), ["b", "w"])
        self.assertEqual(f.info("w"), ("BF16", (7, 1)))
        self.assertTrue(np.array_equal(f.get("w").reshape(-1), back))

    def test_sharded_index_and_errors(self):
        t = {f"layer.{i}.weight": np.full((4, 8), i, np.float32) for i in range(5)}
        files = st.write_sharded(self.dir, t, shards=2, dtype="F32")
        self.assertEqual(len(files), 2)
        ck = st.Checkpoint(self.dir)
        self.assertEqual(ck.names(), sorted(t))
        self.assertTrue(np.array_equal(ck.get("layer.3.weight"), t["layer.3.weight"]))
        os.remove(files[1])
        with self.assertRaisesRegex(st.SafetensorsError, "missing"):
            st.Checkpoint(self.dir)
        bad = os.path.join(self.dir, "bad.safetensors")
        with open(bad, "wb") as f:
            h = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
            f.write(len(h).to_bytes(8, "little") + h + b"\0" * 8)
        with self.assertRaisesRegex(st.SafetensorsError, "do not hold"):
            st.SafetensorsFile(bad)


class CheckpointTest(Tmp):
    def _config(self, **over):
        cfg = Config(vocab_size=300, d_model=16, n_layers=1, n_heads=2, ffn_hidden=48, rope_theta=500000.0)
        j = dict(ckpt.config_json(cfg), **over)
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(j, f)
        return cfg

    def test_config_round_trip_and_refusals(self):
        cfg = self._config()
        got, facts = ckpt.read_config(self.dir)
        self.assertEqual(got.to_dict(), cfg.to_dict())
        self.assertEqual(facts["mask_token_id"], 126336)
        self._config(n_kv_heads=1, weight_tying=True, block_type="sequential")
        with self.assertRaises(ckpt.CheckpointMismatch) as e:
            ckpt.read_config(self.dir)
        for s in ("n_kv_heads", "weight_tying", "block_type"):
            self.assertIn(s, str(e.exception))

    def test_weights_by_checkpoint_names_and_refusals(self):
        cfg = self._config()
        torch.manual_seed(0)
        lm = DimooLM(cfg)
        tensors = ckpt.lm_tensors(lm)
        self.assertIn("model.transformer.blocks.0.ff_proj.weight", tensors)
        self.assertIn("model.transformer.ff_out.weight", tensors)
        st.write_sharded(self.dir, tensors, shards=2)
        self.assertEqual(ckpt.expected_shapes(cfg), {k: tuple(v.shape) for k, v in lm.state_dict().items()})
        got, dtypes = ckpt.load_lm(self.dir, cfg)
        self.assertEqual(dtypes, ["BF16"])
        w = got.state_dict()["model.transformer.wte.weight"]
        self.assertTrue(torch.equal(w, lm.state_dict()["model.transformer.wte.weight"].bfloat16().float()))
        del tensors["model.transformer.ln_f.weight"]
        tensors["model.transformer.extra.weight"] = np.zeros(3, np.float32)
        for f in os.listdir(self.dir):
            if "safetensors" in f:
                os.remove(os.path.join(self.dir, f))
        st.write_sharded(self.dir, tensors, shards=1)
        with self.assertRaisesRegex(ckpt.CheckpointMismatch, "missing weights.*ln_f.*unexpected weights.*extra"):
            ckpt.load_lm(self.dir, cfg)

    def test_tokenizer_checks(self):
        with open(os.path.join(self.dir, "tokenizer.json"), "w") as f:
            json.dump(twin.tokenizer_json(), f)
        facts = ckpt.tokenizer_facts(self.dir)
        self.assertEqual(facts["bos"], 126080)
        tokens, special = ckpt.check_tokens(facts, 134548, 8192)
        self.assertEqual(tokens["codeOffset"], 126356)
        self.assertEqual(special["</user>"], 126343)
        with self.assertRaisesRegex(ckpt.CheckpointMismatch, "logit width 134656"):
            ckpt.check_tokens(facts, 134656, 8192)
        bad = twin.tokenizer_json()
        for t in bad["added_tokens"]:
            if t["content"] == "<IMAGE>":
                t["id"] = 126345
        bad["added_tokens"] = [t for t in bad["added_tokens"] if t["content"] != "<user>"]
        with open(os.path.join(self.dir, "tokenizer.json"), "w") as f:
            json.dump(bad, f)
        with self.assertRaises(ckpt.CheckpointMismatch) as e:
            ckpt.check_tokens(ckpt.tokenizer_facts(self.dir), 134548, 8192)
        self.assertIn("<IMAGE> is id 126345", str(e.exception))
        self.assertIn("template token <user> is not in the tokenizer", str(e.exception))


class RealExportCliTest(Tmp):
    def test_check_only_accepts_the_twin_and_refuses_a_changed_tokenizer_or_manifest(self):
        import real_export
        ck = os.path.join(self.dir, "ck")
        twin.write_twin(ck, seed=1)
        self.assertEqual(real_export.main(["--checkpoint", ck, "--out", self.dir, "--check-only"]), 0)
        man = os.path.join(self.dir, "manifest.json")
        with open(man, "w") as f:
            json.dump({"architecture": dict(twin.TWIN, vocabSize=twin.VOCAB, nLayers=2, nHeads=2, dModel=64,
                                            ffnHidden=192, ropeTheta=500000.0),
                       "tokens": {"bos": 126081}, "tokenizer": {"specialTokens": {"<user>": 126340}},
                       "image": {"gridFactor": 16}}, f)
        self.assertEqual(real_export.main(["--checkpoint", ck, "--out", self.dir, "--check-only", "--manifest", man]), 2)
        tj = twin.tokenizer_json()
        for t in tj["added_tokens"]:
            if t["content"] == "<answer>":
                t["id"] = 126353
        with open(os.path.join(ck, "tokenizer.json"), "w") as f:
            json.dump(tj, f)
        self.assertEqual(real_export.main(["--checkpoint", ck, "--out", self.dir, "--check-only"]), 2)
        self.assertEqual(real_export.main(["--checkpoint", ck, "--out", os.path.join(self.dir, "o")]), 2)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "o", "fp32")))


class VQTest(Tmp):
    CFG = dict(block_out_channels=[8, 8, 16], layers_per_block=1, latent_channels=4, num_vq_embeddings=32,
               norm_num_groups=4)

    def test_layout_shapes_and_load(self):
        torch.manual_seed(1)
        vq = vqgan.VQGAN(vqgan.VQConfig(**self.CFG))
        names = set(vq.state_dict())
        for n in ("encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.mid_block.resnets.1.conv2.bias",
                  "decoder.up_blocks.2.resnets.1.norm1.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight",
                  "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", "quantize.embedding.weight",
                  "quant_conv.weight", "post_quant_conv.bias"):
            self.assertIn(n, names)
        self.assertNotIn("encoder.down_blocks.2.downsamplers.0.conv.weight", names)
        x = torch.rand(2, 3, 16, 24)
        codes = vq.encode_codes(x)
        self.assertEqual(tuple(codes.shape), (2, 4, 6))
        # nearest entry: the same as a brute-force distance
        z = vq.quant_conv(vq.encoder(x)).permute(0, 2, 3, 1)
        d = ((z.unsqueeze(-2) - vq.quantize.embedding.weight) ** 2).sum(-1)
        self.assertTrue(torch.equal(codes, d.argmin(-1)))
        px = vq.decode_codes(codes)
        self.assertEqual(tuple(px.shape), (2, 3, 16, 24))
        self.assertTrue(float(px.min()) >= 0 and float(px.max()) <= 1)
        # the folder layout round trip, and a refusal naming the resnet counts when the layout differs
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(vq.cfg.to_json(), f)
        sd = {k: v.detach().numpy() for k, v in vq.state_dict().items()}
        st.write_file(os.path.join(self.dir, "diffusion_pytorch_model.safetensors"), sd, "F32")
        got = vqgan.load(self.dir)
        self.assertTrue(torch.equal(got.encode_codes(x), codes))
        sd = {k: v for k, v in sd.items() if ".resnets.1." not in k or "decoder.up_blocks" not in k}
        st.write_file(os.path.join(self.dir, "diffusion_pytorch_model.safetensors"), sd, "F32")
        with self.assertRaisesRegex(ValueError, "resnets per block"):
            vqgan.load(self.dir)

    def test_config_refusals(self):
        j = vqgan.VQConfig(**self.CFG).to_json()
        with self.assertRaisesRegex(ValueError, "mid_block_add_attention"):
            vqgan.check_config(dict(j, mid_block_add_attention=True))
        with self.assertRaisesRegex(ValueError, "norm_type"):
            vqgan.check_config(dict(j, norm_type="spatial"))

    def test_onnx_eval_runs_the_exported_vq(self):
        torch.manual_seed(2)
        vq = vqgan.VQGAN(vqgan.VQConfig(**self.CFG)).eval()
        p = os.path.join(self.dir, "enc.onnx")
        torch.onnx.export(vqgan.VQDecodeGraph(vq), (torch.randint(0, 32, (1, 2, 3)),), p, opset_version=17,
                          input_names=["codes"], output_names=["pixels"],
                          dynamic_axes={"codes": {0: "B", 1: "h", 2: "w"}, "pixels": {0: "B", 2: "H", 3: "W"}})
        codes = np.random.RandomState(0).randint(0, 32, (2, 3, 2))
        got = onnx_eval.Graph(p).run({"codes": codes})["pixels"]
        with torch.no_grad():
            want = vq.decode_codes(torch.from_numpy(codes)).numpy()
        self.assertLess(np.abs(got - want).max(), 1e-5)


def _micro_lm(vocab, seed=3, layers=1, **kw):
    torch.manual_seed(seed)
    return DimooLM(Config(vocab_size=vocab, d_model=32, n_layers=layers, n_heads=2, ffn_hidden=64,
                          rope_theta=500000.0, **kw)).eval()


def _feeds(ex, names):
    return {k: ex[k].numpy() for k in names}


class ResidentExportTest(Tmp):
    """The real exporter writes the device-resident ML-Cache's graphs (§4.7) into both directories."""

    def test_resident_graphs_in_both_directories(self):
        from types import SimpleNamespace

        import export as G
        from real import exporter
        lm = _micro_lm(300)
        vq = vqgan.VQGAN(vqgan.VQConfig(**VQTest.CFG)).eval()
        tokens = dict(ckpt.REAL_TOKENS, codeOffset=44, codebookSize=256, textVocabSize=44, mask=1)
        tok = os.path.join(self.dir, "tokenizer.json")
        with open(tok, "w") as f:
            json.dump(twin.tokenizer_json(), f)
        image = {"gridFactor": 16, "minSize": 32, "maxSize": 64, "defaultHeight": 32, "defaultWidth": 32,
                 "maxAspect": 2}
        base = exporter.manifest_base("micro", "1", "test", lm.cfg, tokens, {}, [tok], image, None)
        out = os.path.join(self.dir, "out")
        mans = exporter.export_all(lm, vq, base, [tok], out, log=lambda m: None)
        for dt, man in mans.items():
            d = os.path.join(out, dt)
            for g in exporter.RESIDENT_GRAPHS:
                self.assertEqual(man["graphs"][g], g + ".onnx")
                self.assertIn(g + ".onnx", man["files"])
                self.assertLessEqual(onnx_passes.external_files(os.path.join(d, g + ".onnx")), {"weights.bin"})
            types = {t.data_type for t in onnx.load(os.path.join(d, "denoise_device.onnx")).graph.initializer
                     if len(t.dims) == 2}
            self.assertEqual(types, {TensorProto.FLOAT16} if dt == "fp16" else {TensorProto.FLOAT})
        # the fp32 graphs compute the module's function (denoise_device: the device draw; denoise_resident: the
        # partial step returning the updated cache)
        ex = G.example_inputs(SimpleNamespace(vocab_size=300, code_offset=44, mask=1), lm.cfg)
        specs = G.resident_specs(lm, ex)
        for name in ("denoise_device", "denoise_resident"):
            module, args, ins, outs, _ = specs[name]
            with torch.no_grad():
                want = module(*args)
            got = onnx_eval.Graph(os.path.join(out, "fp32", name + ".onnx")).run(
                {k: a.numpy() for k, a in zip(ins, args)})
            for o, w in zip(outs, want):
                if w.dtype == torch.int64:
                    self.assertTrue(np.array_equal(got[o], w.numpy()), f"{name}.{o}")
                else:
                    self.assertLess(float(np.abs(got[o] - w.numpy()).max()), 1e-4, f"{name}.{o}")


class WeightlessTest(Tmp):
    """tools/model/real/weightless.py: graphs traced at a small vocabulary and widened are the graphs traced at the
    wider one (the same protos but for the external-data offsets, and the same outputs from the same tensors)."""

    def _export(self, vocab, offset, out, fused=False):
        from real import exporter
        lm = _micro_lm(vocab, layers=2, **({"fused_attention": True} if fused else {}))
        writer = exporter.DirWriter(out, "fp16")
        tokens = {"codeOffset": offset, "mask": 1}
        names = ("denoise", "denoise_partial", *exporter.RESIDENT_GRAPHS)
        tmp = os.path.join(self.dir, f"tmp{vocab}{fused}")
        os.makedirs(tmp)
        for name, path in exporter.trace_graphs(lm, None, tokens, tmp, None, lambda m: None, only=names):
            writer.add(name, path)
        return names

    @staticmethod
    def _normal(path):
        m = onnx.load(path, load_external_data=False)
        for t in m.graph.initializer:
            del t.external_data[:]
        return m.SerializeToString()

    def test_widened_graphs_equal_a_direct_export(self):
        self._check(fused=False)

    def test_widened_fused_attention_graphs_equal_a_direct_export(self):
        self._check(fused=True)

    def _check(self, fused):
        from real import weightless
        small, wide = os.path.join(self.dir, f"small{fused}"), os.path.join(self.dir, f"wide{fused}")
        names = self._export(1021, 631, small, fused)
        self._export(1500, 1100, wide, fused)
        size, n, widened = weightless.widen_vocab(small, 1021, 1500, 32, forbidden=(631, 390))
        self.assertEqual(widened, ["lm.model.transformer.ff_out.weight", "lm.model.transformer.wte.weight"])
        self.assertFalse(os.path.exists(os.path.join(small, "weights.bin")))
        for g in names:
            self.assertEqual(self._normal(os.path.join(small, g + ".onnx")),
                             self._normal(os.path.join(wide, g + ".onnx")), g)
            m = onnx.load(os.path.join(small, g + ".onnx"), load_external_data=False)
            self.assertEqual(weightless.casts_of_vocab_matrices(m, 1500, 32), [], g)
        # the new layout holds every tensor at its full size, without overlap; the filler accepts it
        fill = _filler()
        store, regs = fill.regions(small)
        self.assertEqual(store, "weights.bin")
        self.assertEqual(max(o + n for o, n, *_ in regs), size)
        # the same tensors under the new layout: the same outputs
        self.assertEqual(weightless.copy_tensors(wide, small), size)
        g = torch.Generator().manual_seed(4)
        R, L, N = 2, 9, 4
        feeds = {"input_ids": torch.randint(0, 1500, (R, L), generator=g).numpy(),
                 "position_ids": np.tile(np.arange(L), (R, 1)), "attention_mask": np.ones((R, L), np.int64),
                 "target_positions": np.tile(np.arange(N), (R, 1)),
                 "guidance_weights": np.array([[1.5, -0.5]], np.float32),
                 "vocab_range": np.array([1100, 1500]), "temperature": np.array([0.0], np.float32),
                 "uniforms": np.full((1, N), 0.5, np.float32)}
        a = onnx_eval.Graph(os.path.join(small, "denoise_device.onnx")).run(feeds)
        b = onnx_eval.Graph(os.path.join(wide, "denoise_device.onnx")).run(feeds)
        for k in ("sample_index", "row_max", "target_logits", "present_key_1"):
            self.assertTrue(np.array_equal(a[k], b[k]), k)


def _filler():
    import importlib.util
    p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "gpu-kit", "fill_weights.py")
    spec = importlib.util.spec_from_file_location("fill_weights", p)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class FillWeightsTest(Tmp):
    """tools/bench/gpu-kit/fill_weights.py: one consistent store, filled with values of the declared types."""

    def _graph(self, name, inits):
        g = helper.make_graph([helper.make_node("Identity", [inits[0].name], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", inits[0].data_type, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(m, os.path.join(self.dir, name))

    @staticmethod
    def _ext(name, dims, dt, off, length, loc="weights.bin"):
        t = TensorProto(name=name, dims=dims, data_type=dt, data_location=TensorProto.EXTERNAL)
        for k, v in (("location", loc), ("offset", str(off)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    def test_fill_and_refusals(self):
        fill = _filler()
        self._graph("a.onnx", [self._ext("w", [64, 8], TensorProto.FLOAT16, 0, 1024),
                               self._ext("n", [8], TensorProto.FLOAT, 1024, 32)])
        self._graph("b.onnx", [self._ext("w", [64, 8], TensorProto.FLOAT16, 0, 1024),
                               self._ext("v", [4, 4], TensorProto.FLOAT, 1088, 64)])
        path, size = fill.fill(self.dir, chunk_mb=1, log=lambda m: None)
        self.assertEqual(size, 1152)
        m = onnx.load(os.path.join(self.dir, "b.onnx"))  # with the filled data
        w = numpy_helper.to_array(m.graph.initializer[0])
        self.assertEqual(w.dtype, np.float16)
        self.assertTrue(0.005 < float(np.std(w.astype(np.float32))) < 0.05)
        n = numpy_helper.to_array(onnx.load(os.path.join(self.dir, "a.onnx")).graph.initializer[1])
        self.assertLess(float(np.abs(n - 1).max()), 0.2)  # a norm weight: near 1
        self._graph("c.onnx", [self._ext("w", [64, 8], TensorProto.FLOAT, 0, 2048)])
        with self.assertRaisesRegex(fill.Refused, "shares offset 0"):
            fill.regions(self.dir)
        self._graph("c.onnx", [self._ext("i", [4], TensorProto.INT64, 2048, 32)])
        with self.assertRaisesRegex(fill.Refused, "INT64"):
            fill.regions(self.dir)
        self._graph("c.onnx", [self._ext("x", [4], TensorProto.FLOAT, 2048, 16, loc="other.bin")])
        with self.assertRaisesRegex(fill.Refused, "several files"):
            fill.regions(self.dir)
        self._graph("c.onnx", [self._ext("x", [4], TensorProto.FLOAT, 1040, 16)])
        with self.assertRaisesRegex(fill.Refused, "overlaps"):
            fill.regions(self.dir)
        self._graph("c.onnx", [self._ext("x", [4], TensorProto.FLOAT, 2048, 20)])
        with self.assertRaisesRegex(fill.Refused, "declares 20 bytes"):
            fill.regions(self.dir)


class PassesTest(Tmp):
    def _model(self, w):
        W = numpy_helper.from_array(w, "W")
        E = numpy_helper.from_array(w.copy(), "E")  # same bytes: stored once
        nodes = [helper.make_node("Gather", ["E", "ids"], ["emb"]), helper.make_node("Transpose", ["W"], ["Wt"]),
                 helper.make_node("MatMul", ["emb", "Wt"], ["y"]), helper.make_node("Add", ["y", "emb2"], ["out"]),
                 helper.make_node("Gather", ["E", "ids"], ["emb2"])]
        nodes = [nodes[0], nodes[4], nodes[1], nodes[2], nodes[3]]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 16])], [W, E])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    def test_shared_store_and_fp16(self):
        w = (np.random.RandomState(0).randn(16, 16) * 0.1).astype(np.float32)
        ids = np.array([1, 5, 7], np.int64)
        ref = onnx_eval.Graph(self._model(w)).run({"ids": ids})["out"]
        store = onnx_passes.SharedStore(self.dir, min_bytes=16)
        m1, m2 = self._model(w), self._model(w)
        m2, n = onnx_passes.to_fp16(m2, min_elems=16)
        self.assertEqual(n, 2)
        for i, m in enumerate((m1, m2)):
            store.externalize(m)
            onnx_passes.save(m, os.path.join(self.dir, f"m{i}.onnx"))
        self.assertEqual(store.tensors, 4)
        self.assertEqual(store.size, 16 * 16 * 4 + 16 * 16 * 2)  # fp32 once, fp16 once
        self.assertEqual(onnx_passes.external_files(os.path.join(self.dir, "m0.onnx")), {"weights.bin"})
        got = onnx_eval.Graph(os.path.join(self.dir, "m0.onnx")).run({"ids": ids})["out"]
        self.assertTrue(np.array_equal(got, ref))
        m = onnx.load(os.path.join(self.dir, "m1.onnx"))
        ops = [nd.op_type for nd in m.graph.node]
        self.assertIn("Cast", ops)
        self.assertEqual({t.data_type for t in m.graph.initializer}, {TensorProto.FLOAT16})
        got16 = onnx_eval.Graph(m).run({"ids": ids})["out"]
        self.assertEqual(got16.dtype, np.float32)
        self.assertLess(np.abs(got16 - ref).max(), 2e-3)
        self.assertGreater(np.abs(got16 - ref).max(), 0)  # the matmul really ran in float16


if __name__ == "__main__":
    unittest.main()
