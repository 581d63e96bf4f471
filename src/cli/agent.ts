import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast agent is not available in this build yet');
    });
}
