/**
 * Warnings on stderr: each message once (one per onnxruntime session would repeat the same
 * provider fallback three times), and cut to one readable line.
 */
export const MAX_WARNING = 300;

export function warner(write: (s: string) => void = (s) => process.stderr.write(s)): (message: string) => void {
  const seen = new Set<string>();
  return (message: string) => {
    if (seen.has(message)) return;
    seen.add(message);
    const line = message.replace(/\s*\n\s*/g, ' ');
    write(`warning: ${line.length > MAX_WARNING ? `${line.slice(0, MAX_WARNING)}… (${line.length} characters)` : line}\n`);
  };
}
