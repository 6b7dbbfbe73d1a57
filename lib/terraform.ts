// The real terraform CLI, run through lib/exec.ts in an environment folder: no checkpoint calls, no
// CLI config file, no prompts, the S3 credentials from Config in its environment (never on a command
// line, never printed). Also the backend override file that `restore:state fallback` writes.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DrError } from './errors.ts'
import { exec, type ExecResult } from './exec.ts'
import { redact } from './output.ts'

export interface TfCredentials {
  accessKey: string
  secretKey: string
}

export interface TfRunOptions {
  creds?: TfCredentials
  workspace?: string
  timeoutMs?: number
}

export function terraformEnv(opts: TfRunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: '/dev/null',
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
  }
  if (opts.creds) {
    env.AWS_ACCESS_KEY_ID = opts.creds.accessKey
    env.AWS_SECRET_ACCESS_KEY = opts.creds.secretKey
  }
  if (opts.workspace && opts.workspace !== 'default') env.TF_WORKSPACE = opts.workspace
  return env
}

/** `terraform <args> -no-color` in dir. */
export async function terraform(dir: string, args: string[], opts: TfRunOptions = {}): Promise<ExecResult> {
  return exec('terraform', [...args, '-no-color'], { cwd: dir, env: terraformEnv(opts), timeoutMs: opts.timeoutMs ?? 120_000 })
}

/** Throws 'prerequisites' when terraform is not on PATH. Returns its version line. */
export async function verifyTerraform(): Promise<string> {
  const r = await exec('terraform', ['version'], { env: terraformEnv({}), timeoutMs: 20_000 }).catch(() => undefined)
  if (!r || r.exitCode !== 0) throw new DrError('prerequisites', 'terraform is not installed or not on PATH.', 'Install Terraform >= 1.11 (https://developer.hashicorp.com/terraform/install).')
  return r.stdout.split('\n')[0] ?? 'terraform'
}

export function lastLines(r: ExecResult, n = 6): string {
  const text = redact(`${r.stderr}\n${r.stdout}`).split('\n').map((l) => l.replace(/^[│╷╵]\s?/, '').trim()).filter(Boolean)
  return text.slice(-n).join(' / ')
}

export async function init(dir: string, extra: string[], opts: TfRunOptions): Promise<void> {
  const r = await terraform(dir, ['init', '-input=false', ...extra], opts)
  if (r.exitCode !== 0) throw new DrError('failed', `terraform init ${extra.join(' ')} failed (exit ${r.exitCode}): ${lastLines(r)}`)
}

export interface PlanResult {
  /** 0 no changes, 2 changes (terraform plan -detailed-exitcode). */
  exitCode: 0 | 2
  /** `No changes.` or `Plan: 1 to add, 0 to change, 0 to destroy.` */
  summary: string
  /** `terraform_data.web01 will be created`, one per resource the plan touches. */
  changes: string[]
}

/** terraform plan -detailed-exitcode; throws when the plan itself fails. */
export async function plan(dir: string, opts: TfRunOptions): Promise<PlanResult> {
  const r = await terraform(dir, ['plan', '-detailed-exitcode', '-input=false'], opts)
  if (r.exitCode !== 0 && r.exitCode !== 2) throw new DrError('verification', `terraform plan failed (exit ${r.exitCode}): ${lastLines(r)}`)
  return parsePlan(r.stdout, r.exitCode)
}

export function parsePlan(stdout: string, exitCode: 0 | 2): PlanResult {
  const summary = /^(Plan: .*|No changes\..*)$/m.exec(stdout)?.[1]?.trim() ?? (exitCode === 0 ? 'No changes.' : 'Changes found.')
  const changes = [...stdout.matchAll(/^\s*# (\S+ (?:will|must) be .+)$/gm)].map((m) => m[1]!.trim())
  return { exitCode, summary: summary.replace(/ Your infrastructure matches.*$/, ''), changes }
}

// ---- the fallback override ------------------------------------------------------------------------

export const OVERRIDE_FILE = 'backend_override.tf'
/** The first words of an override homelab-dr wrote. */
export const OVERRIDE_MARK = '# homelab-dr restore:state fallback'
const MARK = OVERRIDE_MARK

/** backend_override.tf: the s3 backend replaced by a local one (override files replace nested blocks). */
export function overrideText(env: string, local: { path?: string; workspaceDir?: string }, when = new Date()): string {
  const lines = [
    `${MARK} — written ${when.toISOString()} because S3 did not answer.`,
    `# While this file exists, environment '${env}' uses the local state below, not S3.`,
    `# When MinIO answers again: npm run restore:state -- return --env ${env}  (removes this file, migrates the state back)`,
    'terraform {',
    '  backend "local" {',
  ]
  if (local.path) lines.push(`    path = ${JSON.stringify(local.path)}`)
  if (local.workspaceDir) lines.push(`    workspace_dir = ${JSON.stringify(local.workspaceDir)}`)
  lines.push('  }', '}', '')
  return lines.join('\n')
}

/** The override in an environment folder: absent, ours (with its local path) or someone else's. */
export function readOverride(dir: string): { state: 'absent' } | { state: 'ours'; file: string; path?: string; workspaceDir?: string } | { state: 'foreign'; file: string } {
  const file = join(dir, OVERRIDE_FILE)
  if (!existsSync(file)) return { state: 'absent' }
  const text = readFileSync(file, 'utf8')
  if (!text.startsWith(MARK)) return { state: 'foreign', file }
  const path = /^\s*path\s*=\s*("(?:[^"\\]|\\.)*")/m.exec(text)?.[1]
  const wd = /^\s*workspace_dir\s*=\s*("(?:[^"\\]|\\.)*")/m.exec(text)?.[1]
  return { state: 'ours', file, ...(path ? { path: JSON.parse(path) as string } : {}), ...(wd ? { workspaceDir: JSON.parse(wd) as string } : {}) }
}
