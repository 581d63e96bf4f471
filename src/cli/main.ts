#!/usr/bin/env node
/**
 * kmcast command line. Thin: each command lives in its own file, parses, calls the library and
 * returns an exit code. One top-level catch turns errors into a clean message and exit code.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, ExitCode, errorMessage, isUserError, KmcastError } from '../errors.js';
import { VERSION } from '../version.js';
import { installCrashHandlers } from './crash.js';
import { registerAgent } from './agent.js';
import { registerDoctor } from './doctor.js';
import { registerGenerate } from './generate.js';
import { registerInject } from './inject.js';
import { registerLint } from './lint.js';
import { registerNode } from './node.js';
import { registerProbe } from './probe.js';
import { registerStatus } from './status.js';
import { registerWait } from './wait.js';
import { registerWebhook } from './webhook.js';

/** Registers commands on the program (the lab's, when they are loaded). */
export type Register = (program: Command) => void;

/**
 * `kmcast lab` and `kmcast demo` (the test rig) are not in the image, which carries only what the
 * agents, the webhook, `wait` and `probe` need; in the npm package they are. They are loaded only
 * when asked for (or for the help that lists them), so no agent ever loads the lab's code.
 */
export async function labCommands(argv: readonly string[]): Promise<Register[]> {
  const cmd = argv.slice(2).find((a) => !a.startsWith('-'));
  const wanted = cmd === undefined || cmd === 'lab' || cmd === 'demo' || cmd === 'help';
  if (!wanted) return [];
  try {
    const [lab, demo] = await Promise.all([import('./lab.js'), import('./demo.js')]);
    return [demo.registerDemo, lab.registerLab];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    const absent =
      (name: string): Register =>
      (program) =>
        program
          .command(name)
          .description(`not in this image (the lab and demo ship in the npm package: run them on a Linux host with "sudo npx kmcast ${name}")`)
          .allowUnknownOption()
          .helpOption(false)
          .argument('[args...]')
          .action(() => {
            throw new ConfigError(`kmcast ${name}: not in this image, which carries only the agents, the webhook, wait and probe; run "sudo npx kmcast ${name}" from the npm package on a Linux host`);
          });
    return [absent('demo'), absent('lab')];
  }
}

export function buildProgram(extra: readonly Register[] = []): Command {
  const program = new Command('kmcast')
    .description('Multicast and broadcast for Kubernetes pods on any CNI: a per-pod kernel VXLAN overlay programmed by a sidecar, peers found through a headless Service.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Exit codes:
  0  success
  1  failure (a check failed, loss above --max-loss, lint errors, an unexpected error)
  2  bad configuration or input (the message names the flag, file or field)
  3  missing capability or kernel feature (the message says how to fix it)
  70 internal error (a bug): an unhandled rejection or exception, logged as one JSON line on stderr

Examples:
  sudo kmcast demo                       # the whole story on a simulated 3-node cluster
  kmcast agent --service app-mcast.ns.svc.cluster.local
  kmcast inject -f app.yaml > app.kmcast.yaml
  kmcast lint k8s/`,
    );
  registerAgent(program);
  registerNode(program);
  for (const register of extra) register(program);
  registerProbe(program);
  registerInject(program);
  registerGenerate(program);
  registerLint(program);
  registerWebhook(program);
  registerStatus(program);
  registerDoctor(program);
  registerWait(program);
  // Subcommands inherit exit handling so parse errors exit 2 instead of commander's 1.
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  installCrashHandlers();
  // `kmcast ... | head`: a closed pipe ends the output, it is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  const program = buildProgram(await labCommands(argv));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" to commander; their text is already printed.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return ExitCode.ok;
      }
      return ExitCode.badConfig;
    }
    if (isUserError(err)) {
      process.stderr.write(`kmcast: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof KmcastError) {
      process.stderr.write(`kmcast: ${err.message}\n`);
      if (process.env.KMCAST_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
      return err.exitCode;
    }
    process.stderr.write(`kmcast: unexpected error: ${errorMessage(err)}\n${err instanceof Error ? (err.stack ?? '') : ''}\n`);
    return ExitCode.failure;
  }
}

const code = await main(process.argv);
process.exitCode = code;
