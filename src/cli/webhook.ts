import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerWebhook(program: Command): void {
  program
    .command('webhook')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast webhook is not available in this build yet');
    });
}
