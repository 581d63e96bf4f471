import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast demo is not available in this build yet');
    });
}
