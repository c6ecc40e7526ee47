// The dashboard's API client, generated from the committed OpenAPI document: `npm run client`
// (or `make web-client`) after `make openapi`. A test regenerates it into a temporary folder
// (CLIENT_OUTPUT) and compares, as the OpenAPI document's own test does.
import { defineConfig } from "@hey-api/openapi-ts";

export default defineConfig({
  input: "../docs/openapi.json",
  output: process.env.CLIENT_OUTPUT ?? "src/client",
  plugins: ["@hey-api/client-fetch"],
  logs: { file: false },
});
