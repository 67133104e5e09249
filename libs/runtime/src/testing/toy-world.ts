/**
 * The tiny model's toy world (models/tiny/world.json, written by tools/model/world.py): ground-truth rendering and the
 * pixel checker that judges generated images. Test and benchmark support; not part of the serving path.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RgbImage } from '@dimoo/model';

export interface ToyWorld {
  size: number;
  gridFactor: number;
  colours: Record<string, [number, number, number]>;
  colourOrder: string[];
  shapes: string[];
  positions: Record<string, [number, number]>;
  positionOrder: string[];
  boxSize: number;
  caption: string;
  edits: { colour: string; position: string; shape: string };
  questions: Record<string, 'colour' | 'shape' | 'position'>;
  heldOut: { triples: [string, string, string][] };
}

export interface Scene {
  colour: string;
  shape: string;
  position: string;
}

export async function loadWorld(modelDir: string): Promise<ToyWorld> {
  return JSON.parse(await readFile(join(modelDir, 'world.json'), 'utf8')) as ToyWorld;
}

export const caption = (w: ToyWorld, s: Scene) => w.caption.replace('{colour}', s.colour).replace('{shape}', s.shape).replace('{position}', s.position);

export function allScenes(w: ToyWorld): Scene[] {
  return w.colourOrder.flatMap((colour) => w.shapes.flatMap((shape) => w.positionOrder.map((position) => ({ colour, shape, position }))));
}

export const heldOutScenes = (w: ToyWorld): Scene[] => w.heldOut.triples.map(([colour, shape, position]) => ({ colour, shape, position }));

function inside(w: ToyWorld, s: Scene, x: number, y: number): boolean {
  const [bx, by] = w.positions[s.position]!;
  const half = w.boxSize / 2;
  const X = x + 0.5;
  const Y = y + 0.5;
  if (X < bx || X >= bx + w.boxSize || Y < by || Y >= by + w.boxSize) return false;
  switch (s.shape) {
    case 'square':
      return true;
    case 'circle':
      return (X - (bx + half)) ** 2 + (Y - (by + half)) ** 2 <= half * half;
    case 'triangle':
      return Math.abs(X - (bx + half)) <= (Y - by) / 2;
    default:
      throw new Error(`unknown shape ${s.shape}`);
  }
}

export function render(w: ToyWorld, s: Scene): RgbImage {
  const data = new Uint8Array(w.size * w.size * 3);
  const rgb = w.colours[s.colour]!;
  for (let y = 0; y < w.size; y++) for (let x = 0; x < w.size; x++) if (inside(w, s, x, y)) data.set(rgb, (y * w.size + x) * 3);
  return { width: w.size, height: w.size, data };
}

const FILL: Record<string, number> = { square: 1, circle: Math.PI / 4, triangle: 0.5 };

/** Reads colour, shape and position off the pixels; null when nothing is drawn. */
export function check(w: ToyWorld, img: RgbImage): Scene | null {
  let n = 0;
  const sum = [0, 0, 0];
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const o = (y * img.width + x) * 3;
      const px = [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
      if (Math.max(...px) < 30) continue;
      n++;
      px.forEach((v, c) => (sum[c]! += v));
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
    }
  }
  if (n === 0) return null;
  const mean = sum.map((v) => v / n);
  const nearest = <T>(items: T[], dist: (t: T) => number) => items.reduce((best, t) => (dist(t) < dist(best) ? t : best));
  const colour = nearest(w.colourOrder, (c) => w.colours[c]!.reduce((d, v, i) => d + (v - mean[i]!) ** 2, 0));
  const cx = (x0 + x1 + 1) / 2;
  const cy = (y0 + y1 + 1) / 2;
  const half = w.boxSize / 2;
  const position = nearest(w.positionOrder, (p) => (w.positions[p]![0] + half - cx) ** 2 + (w.positions[p]![1] + half - cy) ** 2);
  const fill = n / ((x1 - x0 + 1) * (y1 - y0 + 1));
  const shape = nearest(w.shapes, (s) => Math.abs((FILL[s] ?? 0) - fill));
  return { colour, shape, position };
}

/** The mixed test batches' inputs: scene i of the world, the image of scene 1, and a disc mask on it to paint. */
export function mixedInputs(world: ToyWorld): { scene: (i: number) => Scene; image: RgbImage; mask: Uint8Array } {
  const scene = (i: number) => ({ colour: world.colourOrder[i % 6]!, shape: world.shapes[i % 3]!, position: world.positionOrder[(i * 2) % 9]! });
  const image = render(world, scene(1));
  const mask = new Uint8Array(world.size * world.size);
  for (let y = 0; y < world.size; y++) for (let x = 0; x < world.size; x++) mask[y * world.size + x] = (x - 40) ** 2 + (y - 70) ** 2 < 900 ? 1 : 0;
  return { scene, image, mask };
}
