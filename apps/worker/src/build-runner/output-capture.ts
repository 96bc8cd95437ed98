import { StringDecoder } from 'node:string_decoder';

/**
 * Captures one output stream of a sandboxed process: calls back once per line (for live progress) and
 * keeps only the last `tailChars` characters (a compile log can be huge, a runaway process endless).
 * A line longer than `maxLineChars` is delivered in pieces, so a process printing without newlines
 * cannot make the worker buffer without bound.
 */
export class OutputCapture {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private tail = '';
  private totalChars = 0;

  constructor(
    private readonly onLine: ((line: string) => void) | undefined,
    private readonly tailChars: number,
    private readonly maxLineChars = 256 * 1024,
  ) {}

  write(chunk: Buffer): void {
    this.push(this.decoder.write(chunk));
  }

  /** Flushes the last line (without a trailing newline) once the stream has ended. */
  end(): void {
    this.push(this.decoder.end());
    if (this.partial) this.emit(this.partial);
    this.partial = '';
  }

  /** The last `tailChars` characters seen. */
  text(): string {
    return this.tail.length > this.tailChars ? this.tail.slice(-this.tailChars) : this.tail;
  }

  get charsSeen(): number {
    return this.totalChars;
  }

  private push(text: string): void {
    if (!text) return;
    this.totalChars += text.length;
    this.tail += text;
    // Trim lazily (at twice the cap) so long logs cost amortised O(1) per character.
    if (this.tail.length > 2 * this.tailChars) this.tail = this.tail.slice(-this.tailChars);

    let data = this.partial + text;
    let newline = data.indexOf('\n');
    while (newline >= 0) {
      this.emit(data.slice(0, newline));
      data = data.slice(newline + 1);
      newline = data.indexOf('\n');
    }
    while (data.length > this.maxLineChars) {
      this.emit(data.slice(0, this.maxLineChars));
      data = data.slice(this.maxLineChars);
    }
    this.partial = data;
  }

  private emit(line: string): void {
    if (!this.onLine) return;
    const clean = line.endsWith('\r') ? line.slice(0, -1) : line;
    try {
      this.onLine(clean);
    } catch {
      // A throwing callback must not take the capture (and the process it drains) down with it.
    }
  }
}
