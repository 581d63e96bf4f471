/** Paths of the shared golden fixtures (inject and webhook tests read the same files). */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// dist/test/unit/manifests -> repository root
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const FIXTURES = `${ROOT}test/fixtures/manifests/`;
export const INJECT_DIR = `${FIXTURES}inject/`;
export const GOLDEN_DIR = `${FIXTURES}inject-golden/`;

export function injectFixtures(): string[] {
  return readdirSync(INJECT_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

export const readFixture = (path: string): string => readFileSync(path, 'utf8');
