import { readFileSync } from 'node:fs';

/** Reads a recorded fixture from test/fixtures (tests run from dist/test/...). */
export function fixture(rel: string): string {
  return readFileSync(new URL(`../../../test/fixtures/${rel}`, import.meta.url), 'utf8');
}
