/**
 * Token layout and per-task sequences (docs/model-interface.md §1). Ids come from the model's manifest, so the same code
 * builds Lumina-DiMOO's sequences (mask 126336, image offset 126356, newline 126084, …) and the tiny model's.
 */
import type { Guidance } from './sampler';
import { branchCount } from './sampler';

export interface TokenLayout {
  vocabSize: number;
  textVocabSize: number;
  codeOffset: number;
  codebookSize: number;
  mask: number;
  newline: number;
  boi: number;
  eoi: number;
  uncondition: number;
  boa: number;
  eoa: number;
  answerPad: number;
}

export interface CodeGrid {
  rows: number;
  cols: number;
  /** row-major codebook indices in [0, codebookSize) */
  codes: Int32Array;
}

/** One guidance branch: its row is prefix ++ (the shared, evolving region) ++ suffix. */
export interface Branch {
  prefix: Int32Array;
  suffix: Int32Array;
}

/** What the sampler works on: the shared region and which of its cells it may write. */
export interface SequenceSpec {
  branches: Branch[];
  /** the shared region's initial tokens (image rows with newlines, or the answer region) */
  region: Int32Array;
  /** indices into `region` of the cells the sampler may write, in order */
  targets: Int32Array;
  /** vocabulary slice sampled at the targets, [lo, hi) */
  vocab: readonly [number, number];
}

export interface ImageRequest {
  /** tok(SYS, USER) — no EOS */
  prompt: Int32Array;
  /** tok(SYS, "<uncondition>") */
  uncondPrompt: Int32Array;
  rows: number;
  cols: number;
  /** painting: the canvas's codes and which cells to regenerate; otherwise every cell is generated */
  canvas?: { codes: Int32Array; regenerate: boolean[] };
}

export interface EditRequest extends ImageRequest {
  /** the input image(s) the instruction refers to (content first, style reference second) */
  inputs: CodeGrid[];
}

export interface UnderstandRequest {
  prompt: Int32Array;
  image: CodeGrid;
  genLength: number;
}

const ids = (...parts: ArrayLike<number>[]): Int32Array => {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** `rows × (cols + 1)` cells: each row's codes as token ids (mask where `code < 0`), then a newline. */
export function imageRows(layout: TokenLayout, rows: number, cols: number, code: (cell: number) => number): Int32Array {
  const out = new Int32Array(rows * (cols + 1));
  let o = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = code(r * cols + c);
      out[o++] = v < 0 ? layout.mask : layout.codeOffset + v;
    }
    out[o++] = layout.newline;
  }
  return out;
}

/** `<IMAGE> rows </IMAGE>` for a known image. */
export function imageBlock(layout: TokenLayout, grid: CodeGrid): Int32Array {
  return ids(
    [layout.boi],
    imageRows(layout, grid.rows, grid.cols, (i) => grid.codes[i]!),
    [layout.eoi],
  );
}

/** Indices of the code cells (not the newlines) in an image region of `rows × (cols + 1)`. */
export function imageCells(rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = r * (cols + 1) + c;
  return out;
}

/** Codes (codebook indices) of an image region; masked cells give -1. */
export function regionCodes(layout: TokenLayout, region: Int32Array, rows: number, cols: number): Int32Array {
  return Int32Array.from(imageCells(rows, cols), (i) => (region[i] === layout.mask ? -1 : region[i]! - layout.codeOffset));
}

function outputRegion(layout: TokenLayout, req: ImageRequest): Int32Array {
  const canvas = req.canvas;
  return imageRows(layout, req.rows, req.cols, (cell) => (canvas && !canvas.regenerate[cell] ? canvas.codes[cell]! : -1));
}

const imageVocab = (layout: TokenLayout): readonly [number, number] => [layout.codeOffset, layout.codeOffset + layout.codebookSize];

/** Text-to-image and painting: cond `tok(SYS,USER) <answer><IMAGE>`, uncond `tok(SYS,<uncondition>) <answer><IMAGE>`. */
export function textToImage(layout: TokenLayout, req: ImageRequest, guidance: Guidance): SequenceSpec {
  const open = [layout.boa, layout.boi];
  const close = Int32Array.of(layout.eoi, layout.eoa);
  const branches: Branch[] = [{ prefix: ids(req.prompt, open), suffix: close }];
  if (branchCount(guidance) > 1) branches.push({ prefix: ids(req.uncondPrompt, open), suffix: close });
  return { branches, region: outputRegion(layout, req), targets: imageCells(req.rows, req.cols), vocab: imageVocab(layout) };
}

/**
 * Image-to-image: the input image block goes before the prompt's last token (`</user>`), spec §1.4.
 * Branches: cond, text dropped (`<uncondition>` + image), image dropped (text only).
 */
export function imageToImage(layout: TokenLayout, req: EditRequest, guidance: Guidance): SequenceSpec {
  const open = [layout.boa, layout.boi];
  const close = Int32Array.of(layout.eoi, layout.eoa);
  const images = ids(...req.inputs.map((g) => imageBlock(layout, g)));
  const withImages = (p: Int32Array) => ids(p.subarray(0, p.length - 1), images, p.subarray(p.length - 1));
  const branches: Branch[] = [{ prefix: ids(withImages(req.prompt), open), suffix: close }];
  if (branchCount(guidance) > 1) {
    branches.push({ prefix: ids(withImages(req.uncondPrompt), open), suffix: close });
    branches.push({ prefix: ids(req.prompt, open), suffix: close });
  }
  return { branches, region: outputRegion(layout, req), targets: imageCells(req.rows, req.cols), vocab: imageVocab(layout) };
}

/**
 * Understanding: `tok(SYS,USER)[:-1] image </user> <answer> MASK×genLength </answer>` (the training format, spec §2.6).
 * The LLaDA unconditional branch masks every position outside the answer region.
 */
export function understanding(layout: TokenLayout, req: UnderstandRequest, guidance: Guidance): SequenceSpec {
  const p = req.prompt;
  const prefix = ids(p.subarray(0, p.length - 1), imageBlock(layout, req.image), p.subarray(p.length - 1), [layout.boa]);
  const branches: Branch[] = [{ prefix, suffix: Int32Array.of(layout.eoa) }];
  if (branchCount(guidance) > 1) {
    branches.push({ prefix: new Int32Array(prefix.length).fill(layout.mask), suffix: Int32Array.of(layout.mask) });
  }
  const region = new Int32Array(req.genLength).fill(layout.mask);
  return { branches, region, targets: Int32Array.from(region.keys()), vocab: [0, layout.textVocabSize] };
}

/** The answer's token ids: the generated region up to the first `</answer>`, pads dropped. */
export function answerTokens(layout: TokenLayout, region: Int32Array): number[] {
  const out: number[] = [];
  for (const t of region) {
    if (t === layout.eoa) break;
    if (t !== layout.answerPad && t !== layout.mask) out.push(t);
  }
  return out;
}
