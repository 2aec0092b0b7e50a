// Aligned columns for people: the read-only commands (status, history, runs)
// print their lists this way. Cells are shown as given; callers pass keys
// through `displayKey` first so a newline can never break a row.

/** Width as a terminal mostly counts it: code points, not UTF-16 units. */
function width(text: string): number {
  return Array.from(text).length;
}

/**
 * Rows (the first one is the header) as lines with columns padded to the
 * widest cell, two spaces apart; the last column is not padded. `right`
 * lists the columns aligned right (numbers, sizes).
 */
export function formatTable(rows: readonly (readonly string[])[], opts: { indent?: string; right?: readonly number[] } = {}): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, width(cell))));
  const right = new Set(opts.right ?? []);
  return rows.map((row) => {
    const cells = row.map((cell, i) => {
      if (i === row.length - 1 && !right.has(i)) return cell;
      const pad = ' '.repeat((widths[i] ?? 0) - width(cell));
      return right.has(i) ? pad + cell : cell + pad;
    });
    return `${opts.indent ?? ''}${cells.join('  ')}`.trimEnd();
  });
}

/**
 * Free text (an error message, a note) on one line: control characters are
 * escaped (\n, \t, \x1b…), the rest is kept. Messages can quote paths, and a
 * path may contain a newline.
 */
export function oneLine(text: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
