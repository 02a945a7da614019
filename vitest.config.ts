import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Node loads graphql's CommonJS build (its package.json has no "exports", only "main"), and so
  // do @apollo/subgraph and graphql-ws; Vite would pick the "module" (.mjs) build for our sources.
  // Two graphql instances fail instanceof checks ("Cannot use GraphQLSchema from another module or
  // realm") as soon as our code runs graphql functions on a schema built by a dependency.
  resolve: {
    alias: [{ find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') }],
  },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.data/**'],
    // Each test file boots its own services (an embedded PGlite takes ~2 s to initialise).
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' },
  },
});
