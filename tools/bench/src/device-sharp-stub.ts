/**
 * The GPU kit bundle's stand-in for sharp (image files in and out, tools/bench/gpu-kit/pack.sh aliases `sharp` to this):
 * device.bench.ts feeds decoded images and token ids, and sharp's native library is not in the kit. Any call says so.
 */
export default function sharp(): never {
  throw new Error('sharp is not in the GPU kit (tools/bench/src/device-sharp-stub.ts): image files cannot be read or written there');
}
