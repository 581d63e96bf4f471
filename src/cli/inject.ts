import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast inject is not available in this build yet');
    });
}
