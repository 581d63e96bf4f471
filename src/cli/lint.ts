import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { formatFindings, lintDocs, summarize } from '../manifests/lint.js';
import { RULE_LIST } from '../manifests/lint-rules.js';
import { readYamlFile } from '../manifests/yamlio.js';
import type { SourceDoc } from '../manifests/yamlio.js';

const EXTENSIONS = /\.(ya?ml|json|conf|conflist)$/;

/** Files to lint: the given files, and under directories every YAML, JSON and CNI config file. */
export function collectFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (EXTENSIONS.test(e.name)) out.push(p);
    }
  };
  for (const p of paths) {
    if (p === '-') {
      out.push(p);
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new InputError(`lint ${p}: no such file or directory`);
    }
    if (st.isDirectory()) walk(p);
    else out.push(p);
  }
  return out;
}

export function registerLint(program: Command): void {
  program
    .command('lint')
    .summary('find multicast mistakes in manifests and CNI configs')
    .description('Check Kubernetes manifests and CNI configuration for multicast mistakes')
    .argument('[paths...]', "files or directories ('-' for stdin): YAML or JSON manifests, Flannel net-conf.json, CNI conflists, Multus NADs")
    .option('--json', 'print findings as JSON', false)
    .option('--list-rules', 'print the rule catalogue and exit', false)
    .addHelpText(
      'after',
      `
Exit codes: 0 no errors (warnings and info allowed), 1 errors found, 2 unreadable input.

Examples:
  kmcast lint k8s/
  kmcast lint deploy.yaml net-conf.json --json`,
    )
    .action((paths: string[], flags: { json: boolean; listRules: boolean }) => {
      if (flags.listRules) {
        const text = flags.json ? `${JSON.stringify(RULE_LIST, null, 2)}\n` : RULE_LIST.map((r) => `${r.id} ${r.severity.padEnd(7)} ${r.name}\n  why: ${r.why}\n  fix: ${r.fix}\n`).join('');
        process.stdout.write(text);
        return;
      }
      if (paths.length === 0) throw new InputError('lint: no paths given; name files or directories, e.g. kmcast lint k8s/');
      const files = collectFiles(paths);
      const docs: SourceDoc[] = files.flatMap((f) => readYamlFile(f));
      const findings = lintDocs(docs);
      const s = summarize(findings);
      if (flags.json) process.stdout.write(`${JSON.stringify({ findings, summary: { ...s, files: files.length } }, null, 2)}\n`);
      else process.stdout.write(formatFindings(findings, files.length));
      if (s.errors > 0) process.exitCode = 1;
    });
}
