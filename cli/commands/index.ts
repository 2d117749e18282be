/** Every `postern` command, one module per command group, in the order `postern --help` lists them. */
import { blocksClear, blocksList } from './blocks.ts';
import { certsInit, certsIssue, certsRotate } from './certs.ts';
import type { Command } from './command.ts';
import { controlPlane } from './control-plane.ts';
import { gateway } from './gateway.ts';
import { inject } from './inject.ts';
import { policyValidate } from './policy.ts';
import { redirect } from './redirect.ts';
import { sidecar } from './sidecar.ts';
import { tokenCreate, tokenRevoke } from './token.ts';
import { up } from './up.ts';
import { usageReplay } from './usage.ts';

export type { Command } from './command.ts';

export const COMMANDS: readonly Command[] = [
  up,
  controlPlane,
  sidecar,
  gateway,
  tokenCreate,
  tokenRevoke,
  certsInit,
  certsIssue,
  certsRotate,
  policyValidate,
  inject,
  redirect,
  usageReplay,
  blocksList,
  blocksClear,
];
