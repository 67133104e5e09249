"""Unit tests of the tiny-model tooling and conformance of models/tiny (no training).

    /usr/bin/python3 -m unittest discover -s tools/model -p 'test_*.py'
"""

import json
import os
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MODEL_DIR = os.environ.get("TINY_MODEL_DIR", os.path.join(HERE, "..", "..", "models", "tiny"))

import conformance  # noqa: E402
import sequences as S  # noqa: E402
import vq  # noqa: E402
import world  # noqa: E402
from tokenizer import PATTERN, SYS, VOCAB_SYS, Tokenizer  # noqa: E402


class WorldTest(unittest.TestCase):
    def test_combinations(self):
        self.assertEqual(len(world.ALL_COMBOS), 162)
        self.assertEqual(len(world.HELD_OUT), 54)
        self.assertEqual(len(world.TRAIN), 108)
        for c in world.HELD_OUT:
            self.assertEqual(sum(c) % 3, 0)
        # every (colour, shape), (colour, position), (shape, position) pair occurs in training
        for a, b in ((0, 1), (0, 2), (1, 2)):
            pairs = {(c[a], c[b]) for c in world.TRAIN}
            self.assertEqual(len(pairs), len({(c[a], c[b]) for c in world.ALL_COMBOS}))

    def test_render_geometry(self):
        img = world.render(0, 0, 0)  # red square at the top left
        self.assertEqual(img.shape, (128, 128, 3))
        self.assertEqual(tuple(img[16, 16]), (220, 40, 40))
        self.assertEqual(tuple(img[47, 47]), (220, 40, 40))
        self.assertEqual(tuple(img[48, 48]), (0, 0, 0))
        self.assertEqual(tuple(img[15, 16]), (0, 0, 0))
        sq = world.shape_mask(0, 4).sum()
        ci = world.shape_mask(1, 4).sum()
        tr = world.shape_mask(2, 4).sum()
        self.assertEqual(sq, 1024)
        self.assertAlmostEqual(ci / 1024, np.pi / 4, delta=0.01)
        self.assertAlmostEqual(tr / 1024, 0.5, delta=0.03)
        t = world.shape_mask(2, 8)  # triangle at the bottom right: apex top middle, base = bottom edge
        bx, by = world.POSITIONS[8][1]
        self.assertTrue(t[by + 31, bx:bx + 32].all())
        self.assertEqual(t[by, bx:bx + 32].sum(), 0)
        self.assertTrue(t[by + 1, bx + 15] and t[by + 1, bx + 16])
        self.assertFalse(t.any(axis=0)[:bx].any())

    def test_positions_and_text(self):
        self.assertEqual(world.POSITIONS[0], ("top left", (16, 16)))
        self.assertEqual(world.POSITIONS[4], ("center", (48, 48)))
        self.assertEqual(world.POSITIONS[8], ("bottom right", (80, 80)))
        self.assertEqual(world.caption(0, 1, 0), "a red circle at the top left")
        self.assertEqual(world.edit_instruction("position", 0, 0, 7), "move it to the bottom")
        self.assertEqual(world.edit_instruction("shape", 0, 2, 7), "make it a triangle")
        self.assertEqual(world.edit_instruction("colour", 5, 2, 7), "make it orange")

    def test_checker_on_ground_truth(self):
        for c in world.ALL_COMBOS:
            self.assertEqual(world.check_image(world.render(*c)), c)
        self.assertIsNone(world.check_image(np.zeros((128, 128, 3), np.uint8)))

    def test_edits_stay_in_training(self):
        train = set(world.TRAIN)
        for src in world.TRAIN:
            for kind, a, b in world.edits_from(src, lambda c: c in train):
                self.assertIn(b, train)
                self.assertEqual(sum(x != y for x, y in zip(a, b)), 1)

    def test_world_json_file(self):
        with open(os.path.join(MODEL_DIR, "world.json")) as f:
            wj = json.load(f)
        self.assertEqual(wj, json.loads(json.dumps(world.world_json())))
        self.assertEqual(len(wj["heldOut"]["triples"]), 54)


class TokenizerTest(unittest.TestCase):
    def setUp(self):
        self.tok = Tokenizer()

    def test_layout(self):
        t = self.tok
        self.assertEqual(t.vocab["<unk>"], 0)
        w = len(t.words)
        self.assertEqual(t.words, sorted(t.words))
        order = ["mask", "newline", "boi", "eoi", "uncondition", "boa", "eoa", "answerPad", "system", "/system",
                 "user", "/user"]
        self.assertEqual([t.ids[k] for k in order], list(range(w + 1, w + 13)))
        self.assertEqual(t.text_vocab_size, w + 13)
        self.assertEqual(t.code_offset, t.text_vocab_size)
        self.assertEqual(t.vocab_size, t.code_offset + 256)

    def test_encode(self):
        t = self.tok
        ids = t.encode("<system>Generate an image.</system><user>A RED circle?</user>")
        words = ["generate", "an", "image", ".", "a", "red", "circle", "?"]
        self.assertEqual(ids, [t.special["<system>"]] + [t.vocab[w] for w in words[:4]] +
                         [t.special["</system>"], t.special["<user>"]] + [t.vocab[w] for w in words[4:]] +
                         [t.special["</user>"]])
        self.assertEqual(t.encode("<uncondition>"), [t.uncondition])
        self.assertEqual(t.encode("<IMAGE></IMAGE><answer></answer>"), [t.boi, t.eoi, t.boa, t.eoa])
        self.assertEqual(t.encode("<image> zebra 42"), [0, 0, 0])  # case-sensitive specials; unknown -> unk
        self.assertEqual(PATTERN, r"<[^>]+>|[a-z]+|[0-9]+|[^\sa-z0-9]")
        for task in SYS:
            p = t.prompt(task, "make it red")
            self.assertEqual(p[0], t.special["<system>"])
            self.assertEqual(p[-1], t.special["</user>"])
            if task in VOCAB_SYS:
                self.assertNotIn(0, p)
        # dense and multiView came after the tiny vocabulary: their words are unknown to it
        self.assertIn(0, t.prompt("dense", "x"))
        self.assertEqual(sorted(set(SYS) - set(VOCAB_SYS)), ["dense", "multiView"])

    def test_json_round_trip(self):
        path = os.path.join(MODEL_DIR, "tokenizer.json")
        with open(path) as f:
            self.assertEqual(json.load(f), json.loads(json.dumps(self.tok.to_json())))
        t2 = Tokenizer.load(path)
        self.assertEqual(t2.ids, self.tok.ids)


class SequencesTest(unittest.TestCase):
    def setUp(self):
        self.tok = Tokenizer()
        self.codes = np.arange(64).reshape(8, 8) % 7

    def test_t2i(self):
        t = self.tok
        ids, tg = S.t2i(t, "a red circle at the top left")
        p = t.prompt("t2i", "a red circle at the top left")
        self.assertEqual(ids[:len(p)], p)
        self.assertEqual(ids[len(p):len(p) + 2], [t.boa, t.boi])
        self.assertEqual(ids[-2:], [t.eoi, t.eoa])
        self.assertEqual(len(ids), len(p) + 2 + 8 * 9 + 2)
        self.assertEqual(len(tg), 64)
        self.assertTrue(all(ids[i] == t.mask for i in tg))
        self.assertEqual(sum(1 for i in ids if i == t.newline), 8)
        self.assertEqual(ids[tg[7] + 1], t.newline)
        u, tu = S.t2i(t, "x", uncond=True)
        self.assertEqual(u[:len(t.prompt("t2i", "<uncondition>"))], t.prompt("t2i", "<uncondition>"))

    def test_i2i_forms(self):
        t = self.tok
        c, tc = S.i2i(t, "edit", "make it blue", self.codes)
        p = t.prompt("edit", "make it blue")
        blk, _ = S.image_block(t, self.codes)
        self.assertEqual(c[:len(p) - 1 + len(blk) + 1], p[:-1] + blk + p[-1:])
        ut, _ = S.i2i(t, "edit", "make it blue", self.codes, form="uncondText")
        pu = t.prompt("edit", "<uncondition>")
        self.assertEqual(ut[:len(pu) - 1 + len(blk) + 1], pu[:-1] + blk + pu[-1:])
        ui, ti = S.i2i(t, "edit", "make it blue", self.codes, form="uncondImage")
        self.assertEqual(ui[:len(p)], p)
        self.assertEqual(c[tc[0] - 2:], ui[ti[0] - 2:])  # shared tail

    def test_mmu(self):
        t = self.tok
        ids, tg = S.mmu(t, "what shape is it ?", self.codes, "top left", 6)
        self.assertEqual([ids[i] for i in tg], [t.vocab["top"], t.vocab["left"], t.eoa, t.answerPad, t.answerPad,
                                                t.answerPad])
        self.assertEqual(ids[tg[0] - 1], t.boa)
        self.assertEqual(ids[-1], t.eoa)
        self.assertEqual(S.decode_answer(t, [ids[i] for i in tg]), "top left")
        u, tu = S.mmu(t, "what shape is it ?", self.codes, "top left", 6, uncond=True)
        self.assertEqual([u[i] for i in tu], [ids[i] for i in tg])
        self.assertTrue(all(u[i] == t.mask for i in range(len(u)) if i not in tu))


class VQTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        imgs = np.stack([world.to_chw01(world.render(*c)) for c in world.TRAIN])
        cls.book = vq.fit_codebook(imgs, seed=0)
        cls.all = np.stack([world.to_chw01(world.render(*c)) for c in world.ALL_COMBOS])

    def test_exact_round_trip(self):
        codes = vq.encode(self.all, self.book)
        self.assertEqual(codes.shape, (162, 8, 8))
        self.assertEqual(len(np.unique(codes)), 55)
        self.assertTrue(np.array_equal(vq.decode(codes, self.book), self.all))
        self.assertTrue((codes[:, 0, :] == 0).all())  # background is code 0
        self.assertTrue((self.book[55:] > 1).all())  # unused entries are far from the data

    def test_patch_order(self):
        px = np.zeros((1, 3, 16, 32), np.float32)
        px[0, 1, 2, 16 + 3] = 1.0
        P = vq.patches(px)
        self.assertEqual(P.shape, (1, 1, 2, 768))
        self.assertEqual(int(np.argmax(P[0, 0, 1])), 1 * 256 + 2 * 16 + 3)

    def test_first_index_on_ties(self):
        book = np.zeros((256, 768), np.float32)
        book[3] = 1.0
        book[5] = 1.0
        x = np.ones((1, 3, 16, 16), np.float32)
        self.assertEqual(int(vq.encode(x, book)[0, 0, 0]), 3)

    def test_torch_modules(self):
        import torch
        codes = vq.encode(self.all[:5], self.book)
        enc = vq.VQEncode(self.book)(torch.from_numpy(self.all[:5])).numpy()
        self.assertTrue(np.array_equal(enc, codes))
        dec = vq.VQDecode(self.book)(torch.from_numpy(codes)).numpy()
        self.assertTrue(np.array_equal(dec, vq.decode(codes, self.book)))


class ModelTest(unittest.TestCase):
    def test_partial_equals_full(self):
        import torch
        from model import Config, DimooLM
        torch.manual_seed(0)
        lm = DimooLM(Config(vocab_size=100, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64)).eval()
        names = {n for n, _ in lm.named_parameters()}
        self.assertIn("model.transformer.blocks.1.up_proj.weight", names)
        self.assertIn("model.transformer.ff_out.weight", names)
        ids = torch.randint(0, 100, (3, 12))
        pos = torch.arange(12).repeat(3, 1)
        att = torch.ones(3, 12, dtype=torch.long)
        att[2, 9:] = 0
        pos[2, 9:] = 0
        vr = torch.tensor([10, 60])
        with torch.no_grad():
            full, kv = lm.full_step(ids, pos, att, vr)
            qi = torch.tensor([[0, 5, 11], [1, 2, 3], [8, 0, 4]])
            part, _ = lm.partial_step(torch.gather(ids, 1, qi), qi, torch.gather(pos, 1, qi), att, vr, kv)
            ref = torch.gather(full, 1, qi.unsqueeze(-1).expand(-1, -1, 50))
            self.assertLess(float((part - ref).abs().max()), 1e-5)
            fl = lm.forward_logits(ids, pos, att)[..., 10:60]
            self.assertLess(float((fl - full).abs().max()), 1e-5)


class SegmentTest(unittest.TestCase):
    """denoise_segment (docs/model-interface.md §4.6) in PyTorch against the CPU ML-Cache path run step by step
    (conformance.host_segment over DenoiseGraph, PartialGraph, SampleHeadGraph and the host's remasking), on a random
    untrained model, where the logits are far from saturated and the cache changes tokens."""

    @classmethod
    def setUpClass(cls):
        import torch
        from model import Config, DimooLM
        torch.manual_seed(5)
        cls.tok = Tokenizer()
        cls.lm = DimooLM(Config(vocab_size=cls.tok.vocab_size, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64)).eval()

    def segment(self, f):
        import torch
        import export
        with torch.no_grad():
            out = export.SegmentGraph(self.lm, 5, self.tok.mask)(*[torch.from_numpy(np.asarray(f[k]))
                                                                    for k in export.SEGMENT_IN])
        return [x.numpy() for x in out]

    def host(self, f):
        import export
        return conformance.host_segment(*export.torch_steps(self.lm), f, self.tok.mask)

    @staticmethod
    def start(f):
        G = f["input_ids"].shape[0] // f["keep_counts"].shape[0]
        return np.take_along_axis(f["input_ids"], f["target_positions"], 1)[::G]

    def test_segment_equals_host_path(self):
        for kind, seed in (("t2i", 1), ("i2i", 2), ("t2i", 3)):
            f = conformance.segment_case(self.tok, kind, 5, seed)
            tokens, prob, row_max = self.segment(f)
            B, N = f["keep_counts"].shape[0], f["target_positions"].shape[1]
            self.assertEqual(tokens.shape, (B, N))
            self.assertEqual(prob.shape, (B, N))
            self.assertEqual(row_max.shape, f["input_ids"].shape)
            np.testing.assert_array_equal(tokens, self.host(f))
            self.assertGreater((tokens != self.start(f)).sum(), 0)

    def test_the_cache_matters_here(self):
        # another cache ratio on the graph side only: the comparison above can fail
        f = conformance.segment_case(self.tok, "t2i", 5, 1)
        other = self.segment(dict(f, cache_ratio=np.full(3, 0.5)))[0]
        self.assertFalse(np.array_equal(other, self.host(f)))

    def test_inactive_steps_change_nothing(self):
        f = conformance.segment_case(self.tok, "i2i", 5, 4)
        out = self.segment(dict(f, step_active=np.zeros_like(f["step_active"])))[0]
        np.testing.assert_array_equal(out, self.start(f))


class ConformanceTest(unittest.TestCase):
    def test_models_tiny(self):
        self.assertTrue(os.path.exists(os.path.join(MODEL_DIR, "manifest.json")), "models/tiny is not built")
        self.assertEqual(conformance.main([MODEL_DIR]), 0)

    def test_rule_np_matches_torch(self):
        import torch
        from model import sample_rule
        rng = np.random.RandomState(3)
        tl = rng.randn(6, 5, 11).astype(np.float32) * 3
        w = np.array([[2.0, -1.0], [1.0, 0.0], [1.5, -0.5]], np.float32)
        tau = np.array([0.0, 0.8, 2.0], np.float32)
        u = rng.rand(3, 5).astype(np.float32)
        i1, p1 = conformance.rule_np(tl, w, tau, u)
        i2, p2 = sample_rule(torch.from_numpy(tl), torch.from_numpy(w), torch.from_numpy(tau), torch.from_numpy(u))
        self.assertTrue(np.array_equal(i1, i2.numpy()))
        self.assertTrue(np.allclose(p1, p2.numpy(), rtol=1e-5))


if __name__ == "__main__":
    unittest.main()
