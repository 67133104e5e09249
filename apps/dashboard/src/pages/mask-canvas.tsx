/**
 * A brush over an image: the mask a paint job regenerates. The mask is drawn at the image's own size (white strokes
 * on black, what the API reads: pixels brighter than half), shown as a red wash over the image. The model regenerates
 * whole token cells: a cell more than half painted.
 */
import type { PointerEvent } from 'react';
import { forwardRef, useCallback, useEffect, useImperativeHandle, useRef, useState } from 'react';

export interface MaskHandle {
  /** the mask as a PNG data URL (the image's size), or null when nothing is painted */
  toDataUrl(): string | null;
}

const DISPLAY = 384;

export const MaskCanvas = forwardRef<MaskHandle, { imageUrl: string; label: string }>(function MaskCanvas({ imageUrl, label }, ref) {
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  const [brush, setBrush] = useState(24);
  const [painted, setPainted] = useState(false);
  const view = useRef<HTMLCanvasElement>(null);
  const mask = useRef<HTMLCanvasElement | null>(null);
  const last = useRef<{ x: number; y: number } | null>(null);

  const clear = useCallback(() => {
    const m = mask.current;
    const v = view.current;
    if (m) {
      const ctx = m.getContext('2d')!;
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, m.width, m.height);
    }
    v?.getContext('2d')!.clearRect(0, 0, v.width, v.height);
    setPainted(false);
  }, []);

  // a new image: a new, empty mask of its size
  useEffect(() => {
    setSize(null);
    setPainted(false);
    const img = new Image();
    img.onload = () => {
      const m = document.createElement('canvas');
      m.width = img.naturalWidth;
      m.height = img.naturalHeight;
      mask.current = m;
      setSize({ w: img.naturalWidth, h: img.naturalHeight });
    };
    img.src = imageUrl;
  }, [imageUrl]);
  useEffect(() => {
    if (size) clear();
  }, [size, clear]);

  useImperativeHandle(ref, () => ({ toDataUrl: () => (painted && mask.current ? mask.current.toDataURL('image/png') : null) }), [painted]);

  /** a pointer position in image pixels */
  const at = (e: PointerEvent<HTMLCanvasElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * e.currentTarget.width) / r.width, y: ((e.clientY - r.top) * e.currentTarget.height) / r.height };
  };
  const stroke = (from: { x: number; y: number }, to: { x: number; y: number }) => {
    for (const [canvas, colour] of [
      [mask.current, '#fff'],
      [view.current, '#ff3b3b'],
    ] as const) {
      const ctx = canvas?.getContext('2d');
      if (!ctx) continue;
      ctx.strokeStyle = colour;
      ctx.lineWidth = brush;
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x, to.y);
      ctx.stroke();
    }
    setPainted(true);
  };
  const down = (e: PointerEvent<HTMLCanvasElement>) => {
    e.currentTarget.setPointerCapture(e.pointerId);
    const p = at(e);
    last.current = p;
    stroke(p, p);
  };
  const move = (e: PointerEvent<HTMLCanvasElement>) => {
    if (!last.current) return;
    const p = at(e);
    stroke(last.current, p);
    last.current = p;
  };
  const up = () => (last.current = null);

  if (!size) return <div className="img-placeholder" />;
  const scale = Math.min(DISPLAY / size.w, DISPLAY / size.h);
  const style = { width: Math.round(size.w * scale), height: Math.round(size.h * scale) };
  return (
    <div className="mask-editor">
      <div className="paint-area" style={style}>
        <img src={imageUrl} alt={label} style={style} />
        <canvas
          ref={view}
          width={size.w}
          height={size.h}
          style={style}
          className="mask-layer"
          data-testid="mask-canvas"
          data-src={imageUrl}
          onPointerDown={down}
          onPointerMove={move}
          onPointerUp={up}
          onPointerCancel={up}
        />
      </div>
      <div className="mask-tools">
        <label>
          Brush {brush} px
          <input
            name="brush"
            type="range"
            min={2}
            max={Math.max(8, Math.round(Math.min(size.w, size.h) / 2))}
            value={brush}
            onChange={(e) => setBrush(Number(e.target.value))}
          />
        </label>
        <button type="button" onClick={clear} disabled={!painted}>
          Clear mask
        </button>
        <span className="muted small">
          {size.w}×{size.h}: paint what to regenerate; a token cell more than half painted is redrawn, the rest keeps its pixels.
        </span>
      </div>
    </div>
  );
});
