import { defineConfig } from "vite";

// `npm run dev` proxies the API to a `loupe serve` on :7070 (or LOUPE_URL).
declare const process: { env: Record<string, string | undefined> };
const target = process.env.LOUPE_URL ?? "http://127.0.0.1:7070";

export default defineConfig({
  base: "/",
  build: {
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { "/api": { target, changeOrigin: true } },
  },
});
