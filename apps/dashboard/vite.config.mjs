// The admin dashboard: built into apps/dashboard/dist and served by the API under /admin/ (apps/api/src/dashboard.ts).
// `npm run dashboard:dev` serves it with hot reload and proxies /v1 to an API (DIMOO_URL, default npm run serve's).
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/admin/',
  plugins: [react()],
  resolve: {
    // the SDK's file helpers (node:fs) are for Node callers; the dashboard never calls them
    alias: { 'node:fs/promises': here('src/shims/node-fs.ts') },
  },
  build: { outDir: here('dist'), emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: {
    port: 5173,
    proxy: { '/v1': { target: process.env.DIMOO_URL ?? 'http://127.0.0.1:8080', changeOrigin: true } },
  },
});
