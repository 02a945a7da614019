import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

// Node resolves `graphql` to its CommonJS build (the package has no `exports` map), and so do
// the Apollo packages; Vite would pick the `module` (.mjs) build for our own files. Two copies
// of graphql cannot share a schema ("Cannot use GraphQLSchema from another module"), so tests
// load the one Node loads in production.
const graphqlCommonJs = createRequire(import.meta.url).resolve('graphql');

export default defineConfig({
  resolve: { alias: [{ find: /^graphql$/, replacement: graphqlCommonJs }] },
  test: {
    include: ['**/*.test.ts'],
    // bench/ holds benchmarks (npm run bench:*), never run as tests, and its own peers' node_modules.
    exclude: ['node_modules/**', '.data/**', 'bench/**'],
    // Each test file boots its own services (an embedded PGlite takes ~2 s to initialise).
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' },
  },
});
