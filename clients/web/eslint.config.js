// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const node = {
  console: "readonly",
  process: "readonly",
  fetch: "readonly",
  Headers: "readonly",
  Request: "readonly",
  Response: "readonly",
  URL: "readonly",
  URLSearchParams: "readonly",
  setTimeout: "readonly",
  clearTimeout: "readonly",
  globalThis: "readonly",
};
const browser = {
  window: "readonly",
  document: "readonly",
  location: "readonly",
  localStorage: "readonly",
  sessionStorage: "readonly",
  HTMLElement: "readonly",
  Element: "readonly",
  getComputedStyle: "readonly",
  performance: "readonly",
  requestAnimationFrame: "readonly",
};

export default tseslint.config(
  { ignores: ["dist/", "node_modules/"] },
  js.configs.recommended,
  {
    files: ["src/**/*.ts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
  {
    files: ["test/**/*.js", "scripts/**/*.mjs", "eslint.config.js"],
    languageOptions: { globals: { ...node, ...browser } },
  },
);
