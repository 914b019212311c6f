// How the CLI reports failures: one line ("error: ..." and a hint), never the help text or a
// stack trace, unless --debug is given (then the stack too). Unknown commands are caught
// before commander would hand them to the default command as extra arguments.
import type { Command } from 'commander';

export const DEBUG_FLAG = '--debug';
export const USAGE_HINT = "(run 'moekit <command> --help' for usage)";

/** argv without --debug, and whether it was there. */
export function takeDebugFlag(argv: readonly string[]): { argv: string[]; debug: boolean } {
  return { argv: argv.filter((a) => a !== DEBUG_FLAG), debug: argv.includes(DEBUG_FLAG) };
}

/** The error line for an unknown first word, or null when it names a command, an option or nothing. */
export function unknownCommand(program: Command, args: readonly string[]): string | null {
  const word = args[0];
  if (word === undefined || word.startsWith('-')) return null;
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  if (names.includes(word) || word === 'help') return null;
  return `error: unknown command '${word.slice(0, 60)}'; commands: ${program.commands.map((c) => c.name()).join(', ')}, help`;
}

/** Print an error thrown by a command as one line (plus its stack with --debug) and exit 1. */
export function reportFatal(err: unknown, debug: boolean): never {
  const e = err instanceof Error ? err : new Error(String(err));
  const firstLine = e.message.split('\n')[0]!;
  process.stderr.write(`error: ${firstLine.replace(/^error: /, '')}\n`);
  if (debug) process.stderr.write(`${e.stack ?? ''}\n`);
  else process.stderr.write(`${USAGE_HINT.replace(')', `; ${DEBUG_FLAG} shows the stack trace)`)}\n`);
  process.exit(1);
}
