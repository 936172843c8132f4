// Builds the console into a directory of static files that the `runpool-console` crate embeds
// in the binary (its build.rs passes `--outDir`). Nothing is fetched at run time: no CDN, no
// web fonts; every asset is a file of the build.
import { defineConfig } from 'vite';

export default defineConfig({
  // The console is served under /console/ by `runpool serve`.
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    target: 'es2022',
    // One small JS and one CSS file; no inlined data URLs, so the CSP can stay strict.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});
