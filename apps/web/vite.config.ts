import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The API serves dist/ at / in production (apps/api/src/dashboard). `npm run dev -w @kiln/web` serves the
// sources with hot reload and proxies the API paths to a running API (KILN_API_URL, default :3000).
const api = process.env.KILN_API_URL ?? 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      '/v1': { target: api, changeOrigin: false },
      '/docs': api,
      '/openapi.json': api,
    },
  },
});
