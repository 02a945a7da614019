import { defineConfig } from 'vitest/config';

export default defineConfig({
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
