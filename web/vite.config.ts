import { defineConfig } from "vite";

// React's JSX through esbuild's automatic runtime: no framework plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  // Into the API's package, so the dashboard ships with every installed copy.
  build: { outDir: "../services/api/dashboard", emptyOutDir: true },
  server: { proxy: { "/api": "http://127.0.0.1:8765" } },
});
