/**
 * Passwords short enough to guess: whoever sees a plain ws:// handshake has
 * the HMAC of one header and can test guesses against it offline, as fast as
 * their hardware goes (docs/security.md, "What others see").
 */

/** Shorter than this many characters is worth a warning. */
export const MIN_PASSWORD_LENGTH = 16;

/** The warning for a shared password and users file, or undefined when every password is long enough. */
export function shortPasswordNote(passwd: string | undefined, users: Iterable<{ name: string; passwd: string }> = []): string | undefined {
  const short = [...users].filter((u) => [...u.passwd].length < MIN_PASSWORD_LENGTH).map((u) => u.name);
  const parts: string[] = [];
  if (passwd !== undefined && [...passwd].length < MIN_PASSWORD_LENGTH) parts.push(`the password is ${[...passwd].length} characters long`);
  if (short.length > 0) {
    const named = short.slice(0, 5).join(', ') + (short.length > 5 ? ` and ${short.length - 5} more` : '');
    parts.push(`user${short.length > 1 ? 's' : ''} ${named} ha${short.length > 1 ? 've' : 's'} a password shorter than ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (parts.length === 0) return undefined;
  return `${parts.join('; ')}: whoever sees a handshake over plain ws:// can test guesses offline; ` +
    `use ${MIN_PASSWORD_LENGTH} or more random characters (openssl rand -base64 24)`;
}
