import { defineConfig } from "vite";

// React's JSX through esbuild's automatic runtime: no framework plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: { outDir: "dist", emptyOutDir: true },
  server: { proxy: { "/api": "http://127.0.0.1:8765" } },
});
