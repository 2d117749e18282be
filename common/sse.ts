/**
 * Server-Sent Events, the framing of the snapshot watch: `event:` and `data:`
 * lines, a blank line ends an event, lines starting with `:` are comments
 * (keep-alives).
 */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

export function formatSseEvent(event: string, data: string): string {
  return `event: ${event}\n${data
    .split('\n')
    .map((line) => `data: ${line}`)
    .join('\n')}\n\n`;
}

/** Incremental parser: feed it chunks as they arrive, it returns the events they complete. */
export class SseParser {
  #buffer = '';
  #event = 'message';
  #data: string[] = [];

  push(chunk: string): SseEvent[] {
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    let newline = this.#buffer.indexOf('\n');
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line === '') {
        if (this.#data.length) events.push({ event: this.#event, data: this.#data.join('\n') });
        this.#event = 'message';
        this.#data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') this.#event = value;
        else if (field === 'data') this.#data.push(value);
      }
      newline = this.#buffer.indexOf('\n');
    }
    return events;
  }
}
