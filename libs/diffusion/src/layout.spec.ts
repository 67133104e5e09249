import type { TokenLayout } from './layout';
import { answerTokens, imageBlock, imageToImage, regionCodes, textToImage, understanding } from './layout';

/** Lumina-DiMOO's ids (spec §1.1): the engine must build the real model's sequences from a manifest alone. */
const REAL: TokenLayout = {
  vocabSize: 134548,
  textVocabSize: 126356,
  codeOffset: 126356,
  codebookSize: 8192,
  mask: 126336,
  newline: 126084,
  boi: 126349,
  eoi: 126350,
  uncondition: 126351,
  boa: 126354,
  eoa: 126355,
  answerPad: 126339,
};
const USER_END = 9999; // stands for `</user>`, the prompt's last token
const prompt = Int32Array.of(1, 2, 3, USER_END);
const uncondPrompt = Int32Array.of(1, 2, REAL.uncondition, USER_END);

describe('sequence layouts with the real token ids', () => {
  it('t2i: prompt <answer><IMAGE> rows-with-newlines </IMAGE></answer>; length P + 4164 at 1024²', () => {
    const spec = textToImage(REAL, { prompt, uncondPrompt, rows: 64, cols: 64 }, { kind: 'text', scale: 4 });
    const [cond, uncond] = spec.branches;
    const len = cond!.prefix.length + spec.region.length + cond!.suffix.length;
    expect(len).toBe(prompt.length + 4164);
    expect(Array.from(cond!.prefix.subarray(-2))).toEqual([REAL.boa, REAL.boi]);
    expect(Array.from(cond!.suffix)).toEqual([REAL.eoi, REAL.eoa]);
    expect(Array.from(uncond!.prefix.subarray(0, 4))).toEqual(Array.from(uncondPrompt));
    // a newline after every row, including the last; every other region cell is a mask target
    expect(spec.region[64]).toBe(REAL.newline);
    expect(spec.region[spec.region.length - 1]).toBe(REAL.newline);
    expect(spec.targets.length).toBe(4096);
    expect(Array.from(spec.targets).every((i) => spec.region[i] === REAL.mask)).toBe(true);
    expect(spec.vocab).toEqual([126356, 134548]);
  });

  it('t2i without guidance runs one branch', () => {
    expect(textToImage(REAL, { prompt, uncondPrompt, rows: 2, cols: 2 }, { kind: 'none' }).branches).toHaveLength(1);
  });

  it('painting keeps the canvas codes outside the regenerated cells', () => {
    const canvas = { codes: Int32Array.of(5, 6, 7, 8), regenerate: [false, true, true, false] };
    const spec = textToImage(REAL, { prompt, uncondPrompt, rows: 2, cols: 2, canvas }, { kind: 'none' });
    expect(Array.from(spec.region)).toEqual([REAL.codeOffset + 5, REAL.mask, REAL.newline, REAL.mask, REAL.codeOffset + 8, REAL.newline]);
    expect(Array.from(regionCodes(REAL, spec.region, 2, 2))).toEqual([5, -1, -1, 8]);
  });

  it('i2i: the image block goes before the last prompt token; three branches for dual guidance', () => {
    const input = { rows: 1, cols: 2, codes: Int32Array.of(3, 4) };
    const spec = imageToImage(REAL, { prompt, uncondPrompt, rows: 1, cols: 2, inputs: [input] }, { kind: 'dual', text: 2.5, image: 4 });
    const block = Array.from(imageBlock(REAL, input));
    expect(block).toEqual([REAL.boi, REAL.codeOffset + 3, REAL.codeOffset + 4, REAL.newline, REAL.eoi]);
    const [cond, noText, noImage] = spec.branches;
    expect(Array.from(cond!.prefix)).toEqual([1, 2, 3, ...block, USER_END, REAL.boa, REAL.boi]);
    expect(Array.from(noText!.prefix)).toEqual([1, 2, REAL.uncondition, ...block, USER_END, REAL.boa, REAL.boi]);
    expect(Array.from(noImage!.prefix)).toEqual([1, 2, 3, USER_END, REAL.boa, REAL.boi]);
  });

  it('understanding: <answer> genLength×MASK </answer>; the LLaDA uncond masks everything else', () => {
    const image = { rows: 1, cols: 1, codes: Int32Array.of(0) };
    const spec = understanding(REAL, { prompt, image, genLength: 6 }, { kind: 'text', scale: 1 });
    const [cond, uncond] = spec.branches;
    expect(cond!.prefix.at(-1)).toBe(REAL.boa);
    expect(Array.from(cond!.suffix)).toEqual([REAL.eoa]);
    expect(Array.from(uncond!.prefix).every((t) => t === REAL.mask)).toBe(true);
    expect(spec.vocab).toEqual([0, REAL.textVocabSize]);
    expect(answerTokens(REAL, Int32Array.of(7, 8, REAL.answerPad, REAL.eoa, 9))).toEqual([7, 8]);
  });
});
