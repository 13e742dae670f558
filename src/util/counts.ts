/** Adds `delta` to `key`'s count, dropping the entry once it reaches 0 (a map of counts holds no zeros). */
export function addTo<K>(counts: Map<K, number>, key: K, delta: number): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
